/** The flat parameter view: offsets in spec order, round trip to the variables, weight-decay groups. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { compileJob } from '../../src/config/compile.ts';
import { jobTemplate } from '../../src/config/template.ts';
import { parse } from 'yaml';
import { Model } from '../../src/model/model.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { tinyConfig } from '../model/helpers.ts';
import { ready } from './fixtures.ts';

test('decay groups: matrices always decay; biases, norms and embeddings as configured', async () => {
  await ready;
  const model = Model.random(tinyConfig('gpt2'), 'causal-lm', 1);
  const flat = new FlatParams(model);
  const at = (name: string) => flat.offsets[flat.names.indexOf(name)];
  const check = (mask: Uint8Array, name: string) => mask[at(name)];
  const def = flat.decayMask();
  assert.equal(check(def, 'layers.0.attn.wq'), 1);
  assert.equal(check(def, 'embed.tokens'), 1);
  assert.equal(check(def, 'layers.0.attn.bq'), 0);
  assert.equal(check(def, 'layers.0.attn_norm.weight'), 0);
  assert.equal(check(def, 'final_norm.bias'), 0);
  const noEmbed = flat.decayMask(['biases', 'norms', 'embeddings']);
  assert.equal(check(noEmbed, 'embed.tokens'), 0);
  assert.equal(check(noEmbed, 'embed.positions'), 0);
  assert.equal(check(noEmbed, 'layers.1.mlp.w_out'), 1);
  const all = flat.decayMask([]);
  assert.equal(all.reduce((a, b) => a + b, 0), flat.size);
  // Round trip: flat -> variables -> flat.
  await flat.readParams();
  const before = Float32Array.from(flat.params);
  flat.params[at('layers.0.attn.wq')] += 1;
  flat.writeParams();
  await flat.readParams();
  assert.ok(Math.abs(flat.params[at('layers.0.attn.wq')] - (before[at('layers.0.attn.wq')] + 1)) < 1e-6);
  model.dispose();
});

test('the template written by `ringtune init` compiles, and shows every default the schema has', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-tpl-'));
  try {
    const text = jobTemplate({ model: 'm', train: 't.jsonl', format: 'text' });
    const job = compileJob(parse(text), join(dir, 'job.yaml'));
    const defaults = compileJob({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { epochs: 3 } }, join(dir, 'job.yaml'));
    assert.deepEqual(job, defaults);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeParams writes the flat values into a variable that was replaced since readParams', async () => {
  await ready;
  const model = Model.random(tinyConfig('gpt2'), 'causal-lm', 1);
  const flat = new FlatParams(model);
  await flat.readParams();
  const name = 'layers.0.attn.wq';
  const k = flat.names.indexOf(name);
  const v = model.params.get(name)!;
  // Something assigns the variable a new tensor (a checkpoint load does), then the optimizer moves the flat values.
  const zeros = tf.zerosLike(v);
  v.assign(zeros);
  zeros.dispose(); // the variable is now the only holder of its new buffer
  const n = v.shape.reduce((a, b) => a * b, 1);
  flat.params.fill(0.25, flat.offsets[k], flat.offsets[k] + n);
  flat.writeParams();
  const got = await v.data();
  assert.equal(got[0], 0.25);
  assert.equal(got[n - 1], 0.25);
  assert.equal(flat.params[flat.offsets[k]], 0.25, 'the flat buffer keeps the optimizer values');
  model.dispose();
});
