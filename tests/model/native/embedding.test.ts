/**
 * Embedding row gather (RtGather) and its gradient, the scatter-add RtGatherGrad, on the native backend:
 * against a float64 loop (out[n] = table[ids[n]]; dtable[v] = sum over n with ids[n] = v of dy[n]) and
 * against gatherRows' composed path on the cpu backend. Skipped where the addon is not built, unless
 * RINGTUNE_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setThreads } from '../../../src/model/backend.ts';
import { loadAddon } from '../../../src/model/native/addon.ts';
import { NativeKernelError } from '../../../src/model/native/backend.ts';
import { hasKernel, runKernel } from '../../../src/model/native/kernels.ts';
import { gatherRows } from '../../../src/model/layers/embedding.ts';
import { Rng } from '../../../src/util/rng.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;
const ready = addon ? initBackend('native', () => {}) : Promise.resolve();

interface Case { N: number; V: number; d: number; table: Float32Array; ids: Int32Array; dy: Float32Array }

/** Ids drawn from few distinct rows so duplicates are common. */
function makeCase(N: number, V: number, d: number, seed: number): Case {
  const rng = new Rng(seed);
  const table = Float32Array.from({ length: V * d }, () => rng.normal());
  const ids = Int32Array.from({ length: N }, () => rng.int(Math.min(V, 1 + Math.floor(N / 2))));
  const dy = Float32Array.from({ length: N * d }, () => rng.normal());
  return { N, V, d, table, ids, dy };
}

function gather64(c: Case): { out: Float64Array; dtable: Float64Array } {
  const { N, V, d } = c;
  const out = new Float64Array(N * d);
  const dtable = new Float64Array(V * d);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < d; j++) {
      out[n * d + j] = c.table[c.ids[n] * d + j];
      dtable[c.ids[n] * d + j] += c.dy[n * d + j];
    }
  }
  return { out, dtable };
}

/** gatherRows forward and its gradient for upstream dy (through sum(out * dy)). */
function run(c: Case): { out: Float32Array; dtable: Float32Array } {
  return tf.tidy(() => {
    const table = tf.tensor2d(c.table, [c.V, c.d]);
    const ids = tf.tensor1d(c.ids, 'int32');
    const dy = tf.tensor2d(c.dy, [c.N, c.d]);
    const out = gatherRows(table, ids);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t as tf.Tensor2D, ids), dy)))(table);
    return { out: out.dataSync() as Float32Array, dtable: g.dataSync() as Float32Array };
  });
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    assert.ok(e <= tol * Math.max(1, Math.abs(want[i])), `${what}: at ${i} got ${got[i]}, want ${want[i]}`);
  }
}

const sizes: Array<[number, number, number]> = [[1, 1, 1], [1, 3, 7], [5, 3, 7], [5, 1, 16], [130, 3, 70], [130, 37, 130], [0, 5, 3], [7, 50257, 9]];

test('RtGather and RtGatherGrad match the float64 loop (duplicate ids summed, awkward sizes)', { skip }, async () => {
  await ready;
  assert.ok(hasKernel('RtGather'));
  const before = tf.memory().numTensors;
  for (const [N, V, d] of sizes) {
    const c = makeCase(N, V, d, N * 31 + V * 7 + d);
    const ref = gather64(c);
    const got = run(c);
    assert.deepEqual(got.out, Float32Array.from(ref.out), `N ${N} V ${V} d ${d}: gather is a copy`);
    assertClose(got.dtable, ref.dtable, 1e-6, `N ${N} V ${V} d ${d} dtable`);
  }
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

test('native gather equals the composed path on the cpu backend (values and gradients)', { skip }, async () => {
  await ready;
  for (const [N, V, d] of [[5, 3, 7], [130, 37, 70], [1, 1, 1]] as Array<[number, number, number]>) {
    const c = makeCase(N, V, d, 3 + N);
    tf.setBackend('cpu');
    const cpu = run(c);
    tf.setBackend('native');
    const nat = run(c);
    assert.deepEqual(nat.out, cpu.out);
    assertClose(nat.dtable, cpu.dtable, 1e-6, `N ${N} V ${V} d ${d} dtable vs cpu`);
  }
});

test('the scatter-add does not depend on the thread count (bit-identical)', { skip }, async () => {
  await ready;
  const c = makeCase(3000, 50, 200, 11);
  await setThreads(1);
  const one = run(c);
  await setThreads(2);
  const two = run(c);
  await setThreads(1);
  assert.deepEqual(one.dtable, two.dtable);
});

test('ids outside [0, V) throw a NativeKernelError naming the op, without leaking', { skip }, async () => {
  await ready;
  const before = tf.memory().numTensors;
  for (const bad of [3, -1, 2 ** 31 - 1]) {
    assert.throws(
      () => tf.tidy(() => gatherRows(tf.zeros([3, 4]), tf.tensor1d([0, bad, 1], 'int32'))),
      (err: Error) => err instanceof NativeKernelError && /RtGather/.test(err.message) && err.message.includes(String(bad)),
    );
    assert.throws(
      () => tf.tidy(() => runKernel('RtGatherGrad', { dy: tf.zeros([3, 4]), ids: tf.tensor1d([0, bad, 1], 'int32') }, { numRows: 3 })),
      (err: Error) => err instanceof NativeKernelError && /RtGatherGrad/.test(err.message),
    );
  }
  assert.throws(() => tf.tidy(() => runKernel('RtGather', { table: tf.zeros([3]), ids: tf.tensor1d([0], 'int32') })), NativeKernelError);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});
