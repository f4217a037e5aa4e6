/**
 * training.on_nonfinite: a step whose all-reduced loss or gradient norm is NaN/Inf either fails with
 * NonFiniteError (default: every rank at the same step, naming it and the rank) or skips its update
 * (parameters and AdamW state untouched: the run equals one that never saw that batch), counted in
 * the history; a NaN evaluation is written as "NaN", never null or 0.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { collateLm } from '../../src/data/batch.ts';
import type { LmExample } from '../../src/data/examples.ts';
import { NonFiniteError } from '../../src/errors.ts';
import { Model } from '../../src/model/model.ts';
import { readModelWeights, writeModelWeights } from '../../src/model/weights-dir.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../src/optim/adamw.ts';
import { readHistoryFile } from '../../src/run/history.ts';
import { parseRecord } from '../../src/run/record-json.ts';
import { latestCheckpoint } from '../../src/run/trainer-state.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { train } from '../../src/train/loop.ts';
import { trainStep, type NonFinitePolicy, type StepContext } from '../../src/train/train-step.ts';
import { Rng } from '../../src/util/rng.ts';
import { tinyConfig } from '../model/helpers.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

function batch(seed: number): ReturnType<typeof collateLm> {
  const rng = new Rng(seed);
  const examples: LmExample[] = [...Array(4)].map((_, i) => {
    const tokens = [...Array(6 + rng.int(6))].map(() => rng.int(37));
    return { tokens, lossMask: tokens.map(() => 1), source: `#${i}` };
  });
  return collateLm(examples, 0);
}

async function replica(seed = 3) {
  const model = Model.random(tinyConfig('gpt2'), 'causal-lm', seed);
  const flat = new FlatParams(model);
  await flat.readParams();
  return { model, flat, optimizer: new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask()) };
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('skip_step: a NaN gradient (another rank overflowed) changes nothing; the run equals one without that batch', async () => {
  await ready;
  // The all-reduce is where another rank's overflow arrives: the stand-in adds a NaN on step 2 only.
  let poison = false;
  const allReduce = async (buf: Float32Array) => { if (poison) buf[0] = NaN; };
  const ctx = (r: Awaited<ReturnType<typeof replica>>, policy?: NonFinitePolicy): StepContext => ({ ...r, gradClip: 1, allReduce, onNonFinite: policy });

  const a = await replica();
  await trainStep(ctx(a, 'skip_step'), [batch(1)], 1e-2);
  const [params, m, v, adamStep] = [Float32Array.from(a.flat.params), Float32Array.from(a.optimizer.m), Float32Array.from(a.optimizer.v), a.optimizer.step];
  poison = true;
  const skipped = await trainStep(ctx(a, 'skip_step'), [batch(2)], 1e-2);
  poison = false;
  assert.equal(skipped.skippedNonFinite, true);
  assert.ok(Number.isNaN(skipped.gradNorm) && Number.isFinite(skipped.loss));
  assert.deepEqual(bytes(a.flat.params), bytes(params));
  assert.deepEqual([bytes(a.optimizer.m), bytes(a.optimizer.v), a.optimizer.step], [bytes(m), bytes(v), adamStep]);
  const third = await trainStep(ctx(a, 'skip_step'), [batch(3)], 1e-2);
  assert.equal(third.skippedNonFinite, false);

  // Independent check: the same run without batch 2 at all ends bit-identical.
  const b = await replica();
  await trainStep(ctx(b), [batch(1)], 1e-2);
  await trainStep(ctx(b), [batch(3)], 1e-2);
  assert.deepEqual(bytes(a.flat.params), bytes(b.flat.params));
  // The model's variables got the same values as the flat buffer.
  const probe = await trainStep(ctx(a, 'skip_step'), [batch(4)], 0);
  const probeB = await trainStep(ctx(b, 'skip_step'), [batch(4)], 0);
  assert.equal(probe.loss, probeB.loss);
  a.model.dispose();
  b.model.dispose();
});

test('fail (default): every rank throws NonFiniteError at the same step; the rank whose own loss was NaN says so', async () => {
  await ready;
  const replicas = [await replica(), await replica()];
  // Rank 1's replica holds a NaN weight (final norm scale: every position's logits become NaN).
  const k = replicas[1].flat.names.indexOf('final_norm.weight');
  replicas[1].flat.params[replicas[1].flat.offsets[k]] = NaN;
  replicas[1].flat.writeParams();
  const buffers = replicas.map((r) => r.flat.reduceBuffer);
  let arrived = 0;
  let release!: () => void;
  const allArrived = new Promise<void>((res) => (release = res));
  const allReduce = async (buf: Float32Array) => {
    if (++arrived === buffers.length) {
      const sum = new Float32Array(buf.length);
      for (const b of buffers) for (let i = 0; i < b.length; i++) sum[i] += b[i];
      for (const b of buffers) b.set(sum);
      release();
    }
    await allArrived;
  };
  const before = replicas.map((r) => Float32Array.from(r.flat.params));
  const results = await Promise.allSettled(replicas.map((r, rank) => trainStep({ ...r, gradClip: 1, allReduce, step: 5, rank }, [batch(10 + rank)], 1e-2)));
  results.forEach((res, rank) => {
    assert.equal(res.status, 'rejected');
    const err = (res as PromiseRejectedResult).reason as NonFiniteError;
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.equal(err.name, 'NonFiniteError');
    assert.deepEqual([err.step, err.rank], [5, rank]);
    assert.match(err.message, new RegExp(`^non-finite training step 5 on rank ${rank} \\(its own batch's loss was ${rank === 1 ? 'NaN' : 'finite'}`));
    assert.match(err.message, /training\.on_nonfinite: skip_step/);
    assert.deepEqual(bytes(replicas[rank].flat.params), bytes(before[rank]), 'no update applied');
  });
  for (const r of replicas) r.model.dispose();
});

/** A gpt2 base model whose final layer norm scale holds a NaN: every loss is NaN. */
async function nanModel(dir: string): Promise<string> {
  const model = await baseModel(dir, 'gpt2');
  const w = await readModelWeights(model);
  w.tensors.get('transformer.ln_f.weight')!.data[0] = NaN;
  await writeModelWeights(model, w.tensors);
  return model;
}

test('a model with a NaN weight: the run stops at step 1 (NonFiniteError), nothing checkpointed; its base eval is "NaN"', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await nanModel(dir);
  await writeLines(join(dir, 'train.jsonl'), lmLines(20, 3));
  const spec = job(dir, {
    model, data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.2, max_seq_len: 16 },
    training: { max_steps: 3, global_batch: 4, micro_batch: 2 }, checkpoint: { every_n_steps: 1 },
  });
  await assert.rejects(train(spec, quiet), (err: Error) => err instanceof NonFiniteError && err.step === 1 && /^non-finite training step 1: loss NaN/.test(err.message));
  assert.equal(await latestCheckpoint(spec.checkpoint.dir), undefined);
  const text = await readFile(join(spec.outputDir, 'metrics.jsonl'), 'utf8');
  assert.ok(!text.includes('null'), text);
  const [base] = await readHistoryFile(join(spec.outputDir, 'metrics.jsonl'));
  assert.equal(base.type, 'eval');
  assert.ok(Number.isNaN(base.loss) && Number.isNaN(base.perplexity), 'NaN, not loss 0 / perplexity 1');
});

test('skip_step with a NaN weight: every step skipped and counted, weights unchanged, the report says NaN', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await nanModel(dir);
  await writeLines(join(dir, 'train.jsonl'), lmLines(20, 3));
  const spec = job(dir, {
    model, data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.2, max_seq_len: 16 },
    training: { max_steps: 3, global_batch: 4, micro_batch: 2, on_nonfinite: 'skip_step' },
  });
  const r = await train(spec, quiet);
  assert.equal(r.steps, 3);
  const trainLines = r.history.filter((h) => h.type === 'train');
  assert.deepEqual(trainLines.map((h) => h.skipped_nonfinite), [1, 1, 1]);
  assert.ok(trainLines.every((h) => Number.isNaN(h.loss)));
  const [w0, w1] = [(await readModelWeights(model)).tensors, (await readModelWeights(r.finalModelDir)).tensors];
  for (const [name, t0] of w0) assert.deepEqual(bytes(w1.get(name)!.data), bytes(t0.data), name);
  const reportText = await readFile(join(spec.outputDir, 'eval_report.json'), 'utf8');
  assert.ok(!reportText.includes('null'), reportText);
  const report = parseRecord(reportText, ['job', 'model', 'task', 'final_model']) as { skipped_nonfinite_steps: number; final_eval: Record<string, number> };
  assert.equal(report.skipped_nonfinite_steps, 3);
  assert.ok(Number.isNaN(report.final_eval.loss) && Number.isNaN(report.final_eval.perplexity));
});
