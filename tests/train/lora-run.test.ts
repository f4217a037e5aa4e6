/**
 * LoRA training: only the adapter (and modules_to_save) moves, the flat buffers are adapter-sized,
 * the run's final output is a PEFT adapter directory, checkpoints hold adapter/, a resumed run is the
 * same run bit for bit, and a bad lora section is a job error naming the field.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { collateCls } from '../../src/data/batch.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { ADAPTER_FILES, loadWithAdapter } from '../../src/model/peft.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../src/optim/adamw.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { train } from '../../src/train/loop.ts';
import { trainStep } from '../../src/train/train-step.ts';
import { Rng } from '../../src/util/rng.ts';
import { loraModel } from '../model/lora-helpers.ts';
import { baseModel, clsLines, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

const bytesOf = async (v: tf.Variable) => Buffer.from(((await v.data()) as Float32Array).slice().buffer);

test('a LoRA step moves the adapter only: base bits unchanged, flat buffers adapter-sized', async () => {
  await ready;
  const { model } = loraModel({ family: 'llama', task: 'classification', lora: { targetModules: ['q_proj', 'v_proj'] } });
  const adapter = model.adapter!;
  const flat = new FlatParams(model);
  // llama tiny: 2 layers x (q: A 16x4 + B 4x16, v: A 16x4 + B 4x8) + score 16x3
  assert.equal(flat.size, 2 * (64 + 64 + 64 + 32) + 48);
  assert.equal(flat.reduceBuffer.length, flat.size + 3);
  assert.deepEqual(flat.names.slice(0, 2), ['model.layers.0.self_attn.q_proj.lora_A', 'model.layers.0.self_attn.q_proj.lora_B']);
  assert.equal(flat.names.at(-1), 'score.weight');
  await flat.readParams();
  const before = new Map<string, Buffer>();
  for (const [name, v] of model.params) before.set(name, await bytesOf(v));
  const adapterBefore = new Map<string, Buffer>();
  for (const [name, v] of adapter.params) adapterBefore.set(name, await bytesOf(v));
  const optimizer = new AdamW(flat.size, { ...ADAMW_DEFAULTS, weightDecay: 0.1 }, flat.decayMask());
  const rng = new Rng(3);
  const examples = [...Array(4)].map((_, i) => ({ tokens: [...Array(5)].map(() => 1 + rng.int(30)), label: i % 3, source: `x${i}` }));
  await trainStep({ model, flat, optimizer, gradClip: 1 }, [collateCls(examples, 0)], 1e-2);
  for (const [name, v] of model.params) {
    const same = (await bytesOf(v)).equals(before.get(name)!);
    assert.equal(same, name !== 'score.weight', `${name} ${same ? 'unchanged' : 'changed'}`);
  }
  for (const [name, v] of adapter.params) assert.ok(!(await bytesOf(v)).equals(adapterBefore.get(name)!), `${name} moved`);
  model.dispose();
});

test('a LoRA run writes the adapter as its final output; resume is bit-identical; checkpoints hold adapter/', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'llama');
  await writeLines(join(dir, 'train.jsonl'), lmLines(60, 4));
  const spec = (output: string) => job(dir, {
    model, output, method: 'lora', lora: { r: 4, alpha: 8, target_modules: ['q_proj', 'v_proj', 'up_proj'] },
    data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.1 },
    training: { epochs: 2, global_batch: 8, micro_batch: 4, lr: 1e-2, warmup_steps: 2, schedule: 'cosine' },
    checkpoint: { every_n_steps: 7, keep: 1 },
  });
  const straight = await train(spec('straight'), quiet);
  assert.equal(straight.steps, 14);
  const files = await readdir(straight.finalModelDir);
  assert.ok(files.includes(ADAPTER_FILES.config) && files.includes(ADAPTER_FILES.weights) && files.includes('tokenizer.json'), files.join());
  assert.ok(!files.includes('model.safetensors') && !files.includes('config.json'), files.join());
  const cfg = JSON.parse(await readFile(join(straight.finalModelDir, ADAPTER_FILES.config), 'utf8'));
  assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.target_modules, cfg.base_model_name_or_path, cfg.task_type], [4, 8, ['q_proj', 'v_proj', 'up_proj'], model, 'CAUSAL_LM']);
  const ckpt = join(straight.finalModelDir, '..', 'checkpoints');
  const steps = (await readdir(ckpt)).filter((n) => n.startsWith('step-'));
  assert.deepEqual(await readdir(join(ckpt, steps[0])).then((x) => x.sort()), ['adapter', 'history.jsonl', 'optimizer.safetensors', 'trainer_state.json']);
  // Optimizer moments are adapter-sized too.
  const moments = await readSafetensors(join(ckpt, steps[0], 'optimizer.safetensors'));
  const adapterSize = [...(await readSafetensors(join(ckpt, steps[0], 'adapter', ADAPTER_FILES.weights))).tensors.values()].reduce((n, x) => n + x.data.length, 0);
  assert.equal([...moments.tensors.values()].reduce((n, x) => n + x.data.length, 0), 2 * adapterSize);
  assert.ok([...moments.tensors.keys()].every((k) => k.includes('.lora_')), [...moments.tensors.keys()].join());

  // The adapter changes the model (B moved away from 0).
  const { model: base } = await loadModel(model);
  const { model: tuned } = await loadWithAdapter(model, straight.finalModelDir);
  const ids = tf.tensor2d([[1, 5, 9, 3]], [1, 4], 'int32');
  const [a, b] = [await base.forward({ ids }).data(), await tuned.forward({ ids }).data()];
  assert.ok(a.some((x, i) => Math.abs(x - b[i]) > 1e-3), 'the trained adapter changes the logits');
  base.dispose();
  tuned.dispose();

  const half = spec('resumed');
  const stop = new Error('interrupted');
  await assert.rejects(train(half, { ...quiet, onStep: (s) => { if (s === 7) throw stop; } }), (e) => e === stop);
  const resumed = await train(half, { ...quiet, resume: true });
  const trainLosses = (h: typeof straight.history) => h.filter((x) => x.type === 'train').map((x) => [x.step, x.loss]);
  assert.deepEqual(trainLosses(resumed.history), trainLosses(straight.history));
  const wa = (await readSafetensors(join(straight.finalModelDir, ADAPTER_FILES.weights))).tensors;
  const wb = (await readSafetensors(join(resumed.finalModelDir, ADAPTER_FILES.weights))).tensors;
  assert.equal(wa.size, 12);
  for (const [name, ta] of wa) assert.ok(Buffer.from(wb.get(name)!.data.buffer).equals(Buffer.from(ta.data.buffer)), name);
});

test('bert classification LoRA: the classifier is trained whole (modules_to_save) and comes back with its labels', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'bert');
  await writeLines(join(dir, 'train.jsonl'), clsLines(32, 2));
  const r = await train(job(dir, {
    model, output: 'out', method: 'lora', data: { train: 'train.jsonl', format: 'label', eval_fraction: 0 },
    training: { max_steps: 3, global_batch: 8, micro_batch: 8, lr: 1e-2 },
  }), quiet);
  const keys = [...(await readSafetensors(join(r.finalModelDir, ADAPTER_FILES.weights))).tensors.keys()];
  assert.ok(keys.includes('base_model.model.classifier.weight') && keys.includes('base_model.model.classifier.bias'), keys.join());
  assert.ok(keys.includes('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight'), keys.join());
  const { model: m } = await loadWithAdapter(model, r.finalModelDir, { task: 'classification', use: { command: 'test', otherCommand: 'x' } });
  assert.deepEqual(Object.values(m.config.id2label).sort(), ['neg', 'pos']);
  m.dispose();
});

test('bad lora sections are job errors naming the field', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(20, 1));
  const base = { model, data: { train: 'train.jsonl', format: 'text' }, training: { max_steps: 1 } };
  assert.throws(() => job(dir, { ...base, lora: { r: 4 } }), /lora: a lora section needs method: lora \(method is "full"\)/);
  assert.equal(job(dir, { ...base, method: { type: 'full' } }).method, 'full');
  assert.equal(job(dir, { ...base, method: 'lora' }).lora?.r, 8);
  const bad = job(dir, { ...base, method: 'lora', lora: { target_modules: ['q_proj'] } });
  await assert.rejects(train(bad, quiet), /lora\.target_modules: q_proj is not a gpt2 linear layer; valid names: c_attn, c_proj, c_fc/);
  const badSave = job(dir, { ...base, method: 'lora', lora: { modules_to_save: ['classifier'] } });
  await assert.rejects(train(badSave, quiet), /lora\.modules_to_save: classifier is not a module of this gpt2 causal-lm model/);
});
