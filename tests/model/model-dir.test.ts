/**
 * Model directories: save -> load is bit-identical with identical logits; standard file layout;
 * sharded and BF16 variants; every mapping problem is an error that names the tensor and directory;
 * a failed save leaves the existing directory intact.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { WeightMappingError, InputError } from '../../src/errors.ts';
import { createModelDir } from '../../src/model/create.ts';
import { loadModel, saveModel } from '../../src/model/model-dir.ts';
import { readModelWeights, writeModelWeights } from '../../src/model/weights-dir.ts';
import { idsTensor, randomIds, ready } from './helpers.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-md-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

for (const family of ['gpt2', 'llama', 'bert'] as const) {
  test(`${family}: save -> load round trip is bit-identical and gives identical logits`, async (t) => {
    await ready;
    const dir = await tempDir(t);
    await createModelDir({ family, preset: 'tiny', out: join(dir, 'a'), seed: 7 });
    const { model } = await loadModel(join(dir, 'a'));
    await saveModel(model, join(dir, 'b'), { tokenizerFrom: join(dir, 'a') });
    const { model: again } = await loadModel(join(dir, 'b'));
    const a = await model.toHost();
    const b = await again.toHost();
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [name, ta] of a) assert.deepEqual(Buffer.from(b.get(name)!.data.buffer), Buffer.from(ta.data.buffer), name);
    // The stored bytes are identical too (headers differ only in __metadata__).
    const body = (buf: Buffer) => buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
    const fa = await readFile(join(dir, 'a', 'model.safetensors'));
    const fb = await readFile(join(dir, 'b', 'model.safetensors'));
    assert.ok(body(fa).length > 100_000);
    assert.deepEqual(body(fb), body(fa));
    assert.deepEqual((await readdir(join(dir, 'b'))).sort(), ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const ids = randomIds(2, 9, model.config.vocabSize, 1);
    const mask = family === 'bert' ? idsTensor(ids.map((r) => r.map(() => 1))) : undefined;
    const la = tf.tidy(() => model.forward({ ids: idsTensor(ids), attentionMask: mask }));
    const lb = tf.tidy(() => again.forward({ ids: idsTensor(ids), attentionMask: mask }));
    assert.deepEqual(await la.data(), await lb.data());
    tf.dispose([la, lb, mask]);
    model.dispose();
    again.dispose();
  });
}

test('hub-style names: tied lm_head, unprefixed base-model keys, sharded BF16 files all load', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: join(dir, 'a') });
  const { tensors } = await readModelWeights(join(dir, 'a'));
  // GPT2Model checkpoints have no `transformer.` prefix; some carry mask buffers and a tied lm_head.
  const renamed = new Map([...tensors].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
  renamed.set('h.0.attn.bias', { shape: [1], data: new Float32Array(1) });
  renamed.set('lm_head.weight', tensors.get('transformer.wte.weight')!);
  await writeModelWeights(join(dir, 'a'), renamed, { dtype: 'BF16', maxShardBytes: 64 * 1024 });
  assert.ok((await readdir(join(dir, 'a'))).includes('model.safetensors.index.json'));
  const loaded = await loadModel(join(dir, 'a'));
  assert.deepEqual(loaded.ignored.sort(), ['h.0.attn.bias', 'lm_head.weight']);
  loaded.model.dispose();
});

test('a base causal-LM checkpoint loads for classification with a fresh head', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'llama', preset: 'tiny', out: join(dir, 'a') });
  const loaded = await loadModel(join(dir, 'a'), { task: 'classification', labels: ['neg', 'pos', 'neutral'] });
  assert.deepEqual(loaded.missingHeads, ['score.weight']);
  assert.deepEqual(loaded.model.params.get('score.weight')!.shape, [64, 3]);
  assert.deepEqual(loaded.ignored, []);
  loaded.model.dispose();
});

async function expectMappingError(t: TestContext, edit: (m: Map<string, { shape: number[]; data: Float32Array }>) => void, ...needles: string[]) {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'llama', preset: 'tiny', out: join(dir, 'a') });
  const { tensors } = await readModelWeights(join(dir, 'a'));
  edit(tensors);
  await writeModelWeights(join(dir, 'a'), tensors);
  await assert.rejects(loadModel(join(dir, 'a')), (err: Error) => {
    assert.ok(err instanceof WeightMappingError, `${err.name}: ${err.message}`);
    for (const n of [join(dir, 'a'), ...needles]) assert.ok(err.message.includes(n), `"${n}" not in: ${err.message}`);
    return true;
  });
}

test('a renamed tensor is reported as unknown and missing, by name', (t) =>
  expectMappingError(t, (m) => {
    m.set('model.layers.1.mlp.up_projection.weight', m.get('model.layers.1.mlp.up_proj.weight')!);
    m.delete('model.layers.1.mlp.up_proj.weight');
  }, 'unknown tensors', 'model.layers.1.mlp.up_projection.weight', 'missing tensors', 'model.layers.1.mlp.up_proj.weight'));

test('a tensor of the wrong shape is reported with both shapes', (t) =>
  expectMappingError(t, (m) => {
    m.set('model.norm.weight', { shape: [32], data: new Float32Array(32) });
  }, 'model.norm.weight has shape [32] but the config needs [64]'));

test('a missing config.json or weights file is an InputError naming the path', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await assert.rejects(loadModel(dir), (err: Error) => err instanceof InputError && err.message.includes(join(dir, 'config.json')));
  await writeFile(join(dir, 'config.json'), '{"model_type": "gpt2", "n_embd": 8');
  await assert.rejects(loadModel(dir), (err: Error) => err instanceof InputError && /invalid JSON/.test(err.message));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_embd: 8, n_head: 2, n_layer: 1, vocab_size: 10 }));
  await assert.rejects(loadModel(dir), (err: Error) => err instanceof InputError && err.message.includes('model.safetensors'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 't5' }));
  await assert.rejects(loadModel(dir), (err: Error) => err instanceof InputError && err.message.includes('unsupported model_type "t5"'));
});

test('a failed save leaves the existing model directory untouched', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: join(dir, 'a') });
  const before = await readFile(join(dir, 'a', 'model.safetensors'));
  const { model } = await loadModel(join(dir, 'a'));
  // Corrupt the in-memory state so the writer refuses it (values count != shape).
  const host = await model.toHost();
  host.set('final_norm.weight', { shape: [64], data: new Float32Array(3) });
  const { saveHostModel } = await import('../../src/model/model-dir.ts');
  await assert.rejects(saveHostModel(join(dir, 'a'), model.config, model.task, host));
  assert.deepEqual(await readFile(join(dir, 'a', 'model.safetensors')), before);
  assert.deepEqual((await readdir(dir)).sort(), ['a']);
  model.dispose();
});
