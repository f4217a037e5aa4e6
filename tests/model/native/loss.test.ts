/**
 * Fused token-weighted cross-entropy (RtCrossEntropy / RtCrossEntropyGrad) on the native backend,
 * checked against an independent float64 loop of the formula
 *   loss = sum_n w_n (logsumexp(z_n) - z_n[y_n]),   dL/dz_n = w_n dy (softmax(z_n) - onehot(y_n))
 * and against the composed path of src/train/loss.ts on the cpu backend. Skipped where the addon is not
 * built, unless RINGTUNE_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setThreads } from '../../../src/model/backend.ts';
import { loadAddon } from '../../../src/model/native/addon.ts';
import { NativeKernelError } from '../../../src/model/native/backend.ts';
import { hasKernel } from '../../../src/model/native/kernels.ts';
import { crossEntropySum } from '../../../src/train/loss.ts';
import { Rng } from '../../../src/util/rng.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;
const ready = addon ? initBackend('native', () => {}) : Promise.resolve();

interface Case { N: number; V: number; z: Float32Array; y: Int32Array; w: Float32Array }

function makeCase(N: number, V: number, seed: number, std = 3): Case {
  const rng = new Rng(seed);
  const z = new Float32Array(N * V);
  for (let i = 0; i < z.length; i++) z[i] = std * rng.normal();
  const y = new Int32Array(N);
  const w = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    y[n] = rng.int(V);
    // Every third row has weight 0 (padding / masked prompt tokens); others in (0, 2).
    w[n] = n % 3 === 1 ? 0 : 2 * rng.next() + 0.01;
  }
  return { N, V, z, y, w };
}

/** float64 loop of the formula: the loss and dL/dz for upstream gradient dy. */
function crossEntropy64(c: Case, dy: number): { loss: number; grad: Float64Array } {
  const { N, V, z, y, w } = c;
  let loss = 0;
  const grad = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, z[n * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(z[n * V + j] - max);
    const lse = max + Math.log(s);
    loss += w[n] * (lse - z[n * V + y[n]]);
    for (let j = 0; j < V; j++) grad[n * V + j] = w[n] * dy * (Math.exp(z[n * V + j] - lse) - (j === y[n] ? 1 : 0));
  }
  return { loss, grad };
}

/** Loss and gradient through crossEntropySum on the active backend (scaled by dy so the upstream gradient is not 1). */
function run(c: Case, dy: number): { loss: number; grad: Float32Array } {
  return tf.tidy(() => {
    const z = tf.tensor2d(c.z, [c.N, c.V]);
    const y = tf.tensor1d(c.y, 'int32');
    const w = tf.tensor1d(c.w);
    const f = (zz: tf.Tensor) => tf.mul(crossEntropySum(zz as tf.Tensor2D, y, w), dy) as tf.Scalar;
    const g = tf.valueAndGrad(f)(z);
    return { loss: g.value.dataSync()[0] / dy, grad: g.grad.dataSync() as Float32Array };
  });
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  assert.ok(worst <= tol, `${what}: max abs error ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol}`);
}

const sizes: Array<[number, number]> = [[1, 1], [1, 3], [5, 1], [5, 3], [130, 3], [1, 37], [5, 37], [130, 37], [130, 1], [5, 50257]];

test('RtCrossEntropy and its gradient match the float64 loop (weights with zeros, V = 1 .. 50257)', { skip }, async () => {
  await ready;
  assert.ok(hasKernel('RtCrossEntropy'));
  const before = tf.memory().numTensors;
  for (const [N, V] of sizes) {
    const c = makeCase(N, V, N * 1000 + V);
    const dy = 2.5;
    const ref = crossEntropy64(c, dy);
    const got = run(c, dy);
    const tolLoss = 1e-5 * Math.max(1, Math.abs(ref.loss));
    assert.ok(Math.abs(got.loss - ref.loss) <= tolLoss, `N ${N} V ${V}: loss ${got.loss} vs ${ref.loss}`);
    assertClose(got.grad, ref.grad, 1e-5 * Math.max(1e-3, maxAbs(ref.grad)), `N ${N} V ${V} dlogits`);
    for (let n = 0; n < N; n++) {
      if (c.w[n] !== 0) continue;
      for (let j = 0; j < V; j++) assert.equal(got.grad[n * V + j], 0, `row ${n} has weight 0 but a gradient`);
    }
  }
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

test('native cross-entropy equals the composed path on the cpu backend', { skip }, async () => {
  await ready;
  for (const [N, V] of [[1, 3], [5, 37], [130, 37], [130, 1]] as Array<[number, number]>) {
    const c = makeCase(N, V, 7 + N + V);
    tf.setBackend('cpu');
    const cpu = run(c, 0.5);
    tf.setBackend('native');
    const nat = run(c, 0.5);
    assert.ok(Math.abs(nat.loss - cpu.loss) <= 1e-5 * Math.max(1, Math.abs(cpu.loss)), `N ${N} V ${V}: ${nat.loss} vs ${cpu.loss}`);
    assertClose(nat.grad, cpu.grad, 1e-5 * Math.max(1e-3, maxAbs(cpu.grad)), `N ${N} V ${V} dlogits vs cpu`);
  }
});

test('extreme logits: large offsets and -1e9 masks stay finite and match float64', { skip }, async () => {
  await ready;
  const c = makeCase(5, 40, 99, 1);
  for (let i = 0; i < c.z.length; i++) c.z[i] += 1e3; // a shift logsumexp must absorb
  c.z[3] = -1e9;
  c.z[40 + 7] = -1e9;
  c.y[0] = 2;
  const ref = crossEntropy64(c, 1);
  const got = run(c, 1);
  assert.ok(Number.isFinite(got.loss));
  assert.ok(Math.abs(got.loss - ref.loss) <= 1e-4 * Math.max(1, Math.abs(ref.loss)), `${got.loss} vs ${ref.loss}`);
  assertClose(got.grad, ref.grad, 1e-5 * maxAbs(ref.grad), 'dlogits');
  assert.equal(got.grad[3], 0);
});

test('weights made by casting an int32 tensor (cpu Cast keeps the Int32Array) are accepted', { skip }, async () => {
  await ready;
  const c = makeCase(4, 5, 17);
  const ref = crossEntropy64({ ...c, w: new Float32Array(4).fill(1) }, 1);
  const loss = tf.tidy(() => {
    const y = tf.tensor1d(c.y, 'int32');
    return crossEntropySum(tf.tensor2d(c.z, [4, 5]), y, tf.cast(tf.onesLike(y), 'float32') as tf.Tensor1D).dataSync()[0];
  });
  assert.ok(Math.abs(loss - ref.loss) <= 1e-5 * Math.max(1, ref.loss), `${loss} vs ${ref.loss}`);
});

test('results do not depend on the thread count (bit-identical loss and gradient)', { skip }, async () => {
  await ready;
  const c = makeCase(130, 2053, 5);
  await setThreads(1);
  const one = run(c, 1);
  await setThreads(2);
  const two = run(c, 1);
  await setThreads(1);
  assert.equal(one.loss, two.loss);
  assert.deepEqual(one.grad, two.grad);
});

test('a target outside [0, V) throws a NativeKernelError naming RtCrossEntropy, without leaking', { skip }, async () => {
  await ready;
  const c = makeCase(4, 6, 3);
  const before = tf.memory().numTensors;
  for (const bad of [6, -1, 1 << 30]) {
    const y = Int32Array.from(c.y);
    y[2] = bad;
    assert.throws(() => run({ ...c, y }, 1), (err: Error) => err instanceof NativeKernelError && /RtCrossEntropy/.test(err.message) && err.message.includes(String(bad)));
  }
  assert.throws(
    () => tf.tidy(() => crossEntropySum(tf.zeros([3, 4]), tf.tensor1d([0, 1], 'int32'), tf.ones([3]))),
    (err: Error) => err instanceof NativeKernelError && /RtCrossEntropy/.test(err.message),
  );
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});
