/**
 * The native backend's memory contract: pooled buffers are recycled, reads are snapshots, views made by
 * fallback kernels pin their buffer, native bytes stay flat across training steps, and impossible sizes
 * or shapes are typed errors. Skipped (with the reason) where the addon is not built, unless
 * RINGTUNE_REQUIRE_NATIVE=1 (CI) makes that a failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/model/backend.ts';
import { loadAddon } from '../../../src/model/native/addon.ts';
import { NativeBackend, NativeKernelError, NativeOutOfMemoryError } from '../../../src/model/native/backend.ts';
import { runKernel } from '../../../src/model/native/kernels.ts';
import { crossEntropySum } from '../../../src/train/loss.ts';
import { idsTensor, makeModel, randomHost, randomIds, tinyConfig } from '../helpers.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;
const ready = addon ? initBackend('native', () => {}) : Promise.resolve();
const backend = () => tf.engine().backend as NativeBackend;

test('a disposed native output buffer is reused for the next output of the same size', { skip }, async () => {
  await ready;
  const a = tf.randomNormal([64, 32]);
  const b = tf.randomNormal([32, 48]);
  tf.dispose(tf.matMul(a, b));
  const { allocations, reuses } = backend().nativeMemory();
  for (let i = 0; i < 5; i++) tf.dispose(tf.matMul(a, b));
  const after = backend().nativeMemory();
  assert.equal(after.allocations, allocations, 'no fresh allocation once the pool holds the size');
  assert.equal(after.reuses, reuses + 5);
  tf.dispose([a, b]);
});

test('dataSync returns a snapshot: recycling the tensor buffer does not change it', { skip }, async () => {
  await ready;
  const a = tf.ones([16, 16]);
  const c = tf.matMul(a, a);
  const seen = c.dataSync();
  assert.equal(seen[0], 16);
  c.dispose();
  const d = tf.matMul(tf.mul(a, 2), a); // same size: takes the recycled buffer
  assert.equal(d.dataSync()[0], 32);
  assert.equal(seen[0], 16, 'the earlier read is not the pooled buffer');
  tf.dispose([a, d]);
});

test('a view made by a fallback kernel pins the pooled buffer it points into', { skip }, async () => {
  await ready;
  const a = tf.ones([8, 8]);
  const c = tf.matMul(a, a); // pooled, all 8
  const view = tf.slice(c, [0, 0], [4, 8]); // cpu Slice returns a subarray view for contiguous slices
  c.dispose();
  const d = tf.matMul(tf.mul(a, 3), a); // would take c's buffer if it were recycled
  assert.deepEqual([...view.dataSync()].slice(0, 3), [8, 8, 8]);
  tf.dispose([a, d, view]);
});

test('tensor count and native bytes stay flat across training steps', { skip }, async () => {
  await ready;
  const cfg = tinyConfig('llama');
  const model = makeModel(cfg, 'causal-lm', randomHost(cfg, 'causal-lm', 1));
  const ids = randomIds(2, 8, cfg.vocabSize, 2);
  const step = async () => {
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward({ ids: idsTensor(ids) });
      return crossEntropySum(logits, tf.zeros([logits.shape[0]], 'int32'), tf.ones([logits.shape[0]]));
    }, model.variables());
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  };
  await step();
  await step();
  const tensors = tf.memory().numTensors;
  const live = backend().nativeMemory().liveBytes;
  for (let i = 0; i < 3; i++) await step();
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend().nativeMemory().liveBytes, live);
  model.dispose();
});

test('an impossible allocation is a NativeOutOfMemoryError naming the size', { skip }, async () => {
  await ready;
  assert.throws(() => backend().alloc(2 ** 40, 'a test tensor'), (e: Error) =>
    e instanceof NativeOutOfMemoryError && /4194304\.0 MiB for a test tensor/.test(e.message));
});

test('a shape the kernel cannot take is a NativeKernelError naming the op and shapes', { skip }, async () => {
  await ready;
  const x = tf.ones([3, 4]);
  const w = tf.ones([5, 2]);
  assert.throws(() => runKernel('RtLinear', { x, w }), (e: Error) =>
    e instanceof NativeKernelError && /RtLinear/.test(e.message) && /\[3,4\]/.test(e.message) && /\[5,2\]/.test(e.message));
  tf.dispose([x, w]);
});
