/**
 * LoRA dropout in training: a training step's loss differs from p = 0's on the same weights, the
 * model after the step evaluates (no dropout) exactly as its merged self does, p = 0 is the merged
 * path bit for bit, a step's gradient does not depend on how its examples split into micro-batches, a resumed run with dropout 0.1 draws the same masks (bit-identical), and the
 * job accepts dropout in [0, 1).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { collateLm } from '../../src/data/batch.ts';
import type { TrainPass } from '../../src/model/lora.ts';
import type { Model } from '../../src/model/model.ts';
import { ADAPTER_FILES } from '../../src/model/peft.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../src/optim/adamw.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { train } from '../../src/train/loop.ts';
import { trainStep } from '../../src/train/train-step.ts';
import { Rng } from '../../src/util/rng.ts';
import { relErr } from '../model/helpers.ts';
import { loraModel } from '../model/lora-helpers.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

const logitsOf = async (model: Model, ids: tf.Tensor2D, train?: TrainPass) => {
  const t = model.forward({ ids, train });
  const out = Buffer.from(((await t.data()) as Float32Array).slice().buffer);
  t.dispose();
  return out;
};

test('a step with dropout 0.3: loss differs from dropout 0, evaluation equals the merged model, dropout 0 ignores the pass', async () => {
  await ready;
  const rng = new Rng(3);
  const examples = [...Array(4)].map((_, i) => ({ tokens: [...Array(7)].map(() => 1 + rng.int(30)), lossMask: Array(7).fill(1), source: `x${i}` }));
  const batch = collateLm(examples, 0);
  const ids = tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32');
  const pass: TrainPass = { seed: 4, step: 1, examples: [20, 21, 22, 23] };
  const losses: number[] = [];
  for (const dropout of [0, 0.3]) {
    // Random non-zero B: with PEFT's B = 0 the adapter term, dropped or not, is 0 in the first step.
    const { model } = loraModel({ family: 'gpt2', task: 'causal-lm', random: true, lora: { targetModules: ['c_attn', 'c_fc'], dropout } });
    const evalBefore = await logitsOf(model, ids);
    const trainBefore = await logitsOf(model, ids, pass);
    assert.equal(trainBefore.equals(evalBefore), dropout === 0, dropout === 0 ? 'dropout 0: a training forward is the merged forward bit for bit' : 'dropout acts in a training forward');
    const flat = new FlatParams(model);
    await flat.readParams();
    const optimizer = new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask());
    const tensors = tf.memory().numTensors;
    const r = await trainStep({ model, flat, optimizer, gradClip: 1, seed: pass.seed, step: pass.step, examples: [pass.examples] }, [batch], 1e-2);
    assert.equal(tf.memory().numTensors, tensors, 'no tensor leaks in a step');
    assert.ok(Number.isFinite(r.loss));
    losses.push(r.loss);
    const evalAfter = await logitsOf(model, ids);
    assert.ok(!evalAfter.equals(evalBefore), 'the step moved the adapter');
    model.mergeAdapter();
    assert.ok((await logitsOf(model, ids)).equals(evalAfter), 'evaluation after the step = the merged model (no dropout)');
    model.dispose();
  }
  assert.ok(Math.abs(losses[0] - losses[1]) > 1e-4, `dropout 0 loss ${losses[0]} vs dropout 0.3 loss ${losses[1]}`);
  ids.dispose();
});

test('an example draws the same masks in whatever micro-batch (and padding) it lands: one micro-batch of 4 = two of 2', async () => {
  await ready;
  const rng = new Rng(5);
  // Lengths 8, 8, 4, 4: alone the last two pad to 3 positions, together with the first two to 7.
  const examples = [8, 8, 4, 4].map((n, i) => ({ tokens: [...Array(n)].map(() => 1 + rng.int(30)), lossMask: Array(n).fill(1), source: `x${i}` }));
  const run = async (split: number[][], ids: number[][]) => {
    const { model } = loraModel({ family: 'llama', task: 'causal-lm', random: true, lora: { targetModules: ['q_proj', 'v_proj', 'down_proj'], dropout: 0.3 } });
    const flat = new FlatParams(model);
    await flat.readParams();
    const optimizer = new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask());
    const micro = split.map((rows) => collateLm(rows.map((i) => examples[i]), 0));
    const r = await trainStep({ model, flat, optimizer, gradClip: 0, seed: 9, step: 2, examples: ids }, micro, 1e-2);
    const grads = flat.grads.slice();
    model.dispose();
    return { loss: r.loss, grads };
  };
  const one = await run([[0, 1, 2, 3]], [[30, 31, 32, 33]]);
  const two = await run([[0, 1], [2, 3]], [[30, 31], [32, 33]]);
  assert.ok(Math.abs(one.loss - two.loss) < 1e-6 * one.loss, `loss ${one.loss} vs ${two.loss}`);
  assert.ok(relErr(two.grads, one.grads) < 1e-5, `gradients ${relErr(two.grads, one.grads)}`);
  // ...and the masks do follow the example: another index for example 3 changes the step.
  const other = await run([[0, 1], [2, 3]], [[30, 31], [32, 34]]);
  assert.ok(relErr(other.grads, one.grads) > 1e-3, `gradients with other masks ${relErr(other.grads, one.grads)}`);
});

test('a LoRA run with dropout 0.1 resumes bit-identical and saves lora_dropout', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'llama');
  await writeLines(join(dir, 'train.jsonl'), lmLines(60, 4));
  const spec = (output: string, dropout: number) => job(dir, {
    model, output, method: 'lora', lora: { r: 4, alpha: 8, dropout, target_modules: ['q_proj', 'v_proj', 'up_proj'] },
    data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.1 },
    training: { epochs: 2, global_batch: 8, micro_batch: 4, lr: 1e-2, warmup_steps: 2, schedule: 'cosine' },
    checkpoint: { every_n_steps: 7, keep: 1 },
  });
  const straight = await train(spec('straight', 0.1), quiet);
  assert.equal(straight.steps, 14);
  const cfg = JSON.parse(await readFile(join(straight.finalModelDir, ADAPTER_FILES.config), 'utf8'));
  assert.equal(cfg.lora_dropout, 0.1);
  const trainLosses = (h: typeof straight.history) => h.filter((x) => x.type === 'train').map((x) => [x.step, x.loss]);

  const half = spec('resumed', 0.1);
  const stop = new Error('interrupted');
  await assert.rejects(train(half, { ...quiet, onStep: (s) => { if (s === 7) throw stop; } }), (e) => e === stop);
  const resumed = await train(half, { ...quiet, resume: true });
  assert.deepEqual(trainLosses(resumed.history), trainLosses(straight.history));
  const wa = (await readSafetensors(join(straight.finalModelDir, ADAPTER_FILES.weights))).tensors;
  const wb = (await readSafetensors(join(resumed.finalModelDir, ADAPTER_FILES.weights))).tensors;
  assert.equal(wa.size, 12);
  for (const [name, ta] of wa) assert.ok(Buffer.from(wb.get(name)!.data.buffer).equals(Buffer.from(ta.data.buffer)), name);

  // Dropout acted: the same run without it trains differently (B moves from 0 after step 1, so later losses differ).
  const plain = await train(spec('plain', 0), quiet);
  const [d, p] = [trainLosses(straight.history), trainLosses(plain.history)];
  assert.equal(d[0][1], p[0][1], 'step 1: B = 0, the dropped adapter term is 0 too');
  assert.ok(d.slice(1).some(([, l], i) => l !== p[i + 1][1]), 'later steps differ');
});

test('lora.dropout: 0.05 compiles (no longer a job error); 1 is refused by the schema naming the field', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(20, 1));
  const base = { model, method: 'lora', data: { train: 'train.jsonl', format: 'text' }, training: { max_steps: 1 } };
  assert.equal(job(dir, { ...base, lora: { dropout: 0.05 } }).lora?.dropout, 0.05);
  assert.equal(job(dir, { ...base }).lora?.dropout, 0);
  assert.throws(() => job(dir, { ...base, lora: { dropout: 1 } }), /lora\.dropout: .*<1/);
  assert.throws(() => job(dir, { ...base, lora: { dropout: -0.1 } }), /lora\.dropout/);
});
