/**
 * Native norm kernels (RtLayerNorm, RtRmsNorm and their Grad kernels, via src/model/layers/layer-norm.ts and
 * rms-norm.ts) against:
 *   - an independent float64 loop of the published formula (torch.nn.LayerNorm with biased variance;
 *     LlamaRMSNorm y = x * rsqrt(mean(x^2) + eps) * w) and its float64 analytic gradient,
 *   - float64 central finite differences of that reference (so the analytic reference is itself checked),
 *   - the composed tfjs path on the 'cpu' backend.
 * Always runs on the native backend (skipped when the addon is not built), whatever RINGTUNE_BACKEND says.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setThreads } from '../../../src/model/backend.ts';
import { layerNorm } from '../../../src/model/layers/layer-norm.ts';
import { rmsNorm } from '../../../src/model/layers/rms-norm.ts';
import { NativeKernelError } from '../../../src/model/native/backend.ts';
import { runKernel } from '../../../src/model/native/kernels.ts';
import { Rng } from '../../../src/util/rng.ts';

let skip: string | false = false;
before(async () => {
  try {
    await initBackend('native', () => {});
  } catch (err) {
    skip = `native backend unavailable: ${(err as Error).message}`;
  }
});

const NS = [1, 3, 37];
const DS = [1, 7, 64, 768];

// ---- float64 references -------------------------------------------------------------------------

function layerNorm64(x: Float64Array, g: Float64Array, b: Float64Array, N: number, d: number, eps: number) {
  const y = new Float64Array(N * d), xhat = new Float64Array(N * d), rstd = new Float64Array(N), mean = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - m) ** 2;
    v /= d;
    const s = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < d; j++) {
      xhat[r * d + j] = (x[r * d + j] - m) * s;
      y[r * d + j] = xhat[r * d + j] * g[j] + b[j];
    }
    mean[r] = m;
    rstd[r] = s;
  }
  return { y, xhat, mean, rstd };
}

/** dL/dx, dL/dgamma, dL/dbeta for L = sum(y * dy): the LayerNorm backward derived from the definition. */
function layerNormGrad64(dy: Float64Array, x: Float64Array, g: Float64Array, N: number, d: number, eps: number) {
  const { xhat, rstd } = layerNorm64(x, g, new Float64Array(d), N, d, eps);
  const dx = new Float64Array(N * d), dg = new Float64Array(d), db = new Float64Array(d);
  for (let r = 0; r < N; r++) {
    let a = 0, c = 0;
    for (let j = 0; j < d; j++) {
      const gj = dy[r * d + j] * g[j];
      a += gj;
      c += gj * xhat[r * d + j];
    }
    for (let j = 0; j < d; j++) {
      const i = r * d + j;
      dx[i] = rstd[r] * (dy[i] * g[j] - a / d - xhat[i] * c / d);
      dg[j] += dy[i] * xhat[i];
      db[j] += dy[i];
    }
  }
  return [dx, dg, db];
}

function rmsNorm64(x: Float64Array, w: Float64Array, N: number, d: number, eps: number) {
  const y = new Float64Array(N * d), rstd = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j] ** 2;
    const s = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * s * w[j];
    rstd[r] = s;
  }
  return { y, rstd };
}

function rmsNormGrad64(dy: Float64Array, x: Float64Array, w: Float64Array, N: number, d: number, eps: number) {
  const { rstd } = rmsNorm64(x, w, N, d, eps);
  const dx = new Float64Array(N * d), dw = new Float64Array(d);
  for (let r = 0; r < N; r++) {
    const s = rstd[r];
    let c = 0;
    for (let j = 0; j < d; j++) c += dy[r * d + j] * w[j] * x[r * d + j];
    for (let j = 0; j < d; j++) {
      const i = r * d + j;
      dx[i] = s * dy[i] * w[j] - x[i] * s ** 3 * c / d;
      dw[j] += dy[i] * x[i] * s;
    }
  }
  return [dx, dw];
}

// ---- helpers -----------------------------------------------------------------------------------

function randn(rng: Rng, n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + scale * rng.normal();
  return a;
}
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };

/**
 * |a - e| <= rtol * (|e| + floor) elementwise: relative, with an absolute floor at the tensor's scale
 * (default max|e|). Pass a larger floor where the true value is a cancellation of larger terms.
 */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string, floor = 0): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = floor;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0, at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (Math.abs(expected[i]) + scale || 1);
    if (!(err <= worst)) { worst = err; at = i; }
  }
  assert.ok(worst <= rtol, `${what}: error ${worst.toExponential(2)} > ${rtol} at ${at} (got ${actual[at]}, want ${expected[at]})`);
}

/** max over rows r, features j of |rstd_r * dy_rj * w_j|: the size of the terms dx is made of. */
function termScale(rstd: ArrayLike<number>, dy: ArrayLike<number>, w: ArrayLike<number>, N: number, d: number): number {
  let m = 0;
  for (let r = 0; r < N; r++) for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(rstd[r] * dy[r * d + j] * w[j]));
  return m;
}

/** Forward y and input gradients (for cotangent dy) through the layer function on the active backend. */
function run(f: (...ts: tf.Tensor[]) => tf.Tensor, inputs: { data: Float32Array; shape: number[] }[], dy: Float32Array) {
  return tf.tidy(() => {
    const ts = inputs.map((i) => tf.tensor(i.data, i.shape));
    const y = f(...ts);
    const dyT = tf.tensor(dy, y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => f(...a))(ts, dyT);
    return { y: y.dataSync().slice(), grads: grads.map((g) => g.dataSync().slice()) };
  });
}

async function onCpu<T>(fn: () => T): Promise<T> {
  await tf.setBackend('cpu');
  try {
    return fn();
  } finally {
    await tf.setBackend('native');
  }
}

// ---- LayerNorm ---------------------------------------------------------------------------------

const ln = (eps: number) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, eps);

test('RtLayerNorm forward and gradient vs float64 reference and the cpu composed path', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(11);
  const eps = 1e-5;
  for (const N of NS) {
    for (const d of DS) {
      const x = randn(rng, N * d, 2, 3), g = randn(rng, d, 0.3, 1), b = randn(rng, d, 0.5), dy = randn(rng, N * d);
      const inputs = [{ data: x, shape: [N, d] }, { data: g, shape: [d] }, { data: b, shape: [d] }];
      const before = tf.memory().numTensors;
      const got = run(ln(eps), inputs, dy);
      assert.equal(tf.memory().numTensors, before, `N ${N} d ${d}: leaked tensors`);
      const ref = layerNorm64(f64(x), f64(g), f64(b), N, d, eps);
      const refG = layerNormGrad64(f64(dy), f64(x), f64(g), N, d, eps);
      const tag = `LayerNorm N ${N} d ${d}`;
      // dx = rstd * (g - mean(g) - xhat * mean(g xhat)) cancels exactly at d = 1: judge it at the scale of rstd * g.
      const floors = [termScale(ref.rstd, dy, g, N, d), 0, 0];
      close(got.y, ref.y, 1e-5, `${tag} y`);
      ['dx', 'dgamma', 'dbeta'].forEach((n, i) => close(got.grads[i], refG[i], 1e-5, `${tag} ${n}`, floors[i]));
      const cpu = await onCpu(() => run(ln(eps), inputs, dy));
      close(got.y, cpu.y, 1e-5, `${tag} y vs cpu`);
      ['dx', 'dgamma', 'dbeta'].forEach((n, i) => close(got.grads[i], cpu.grads[i], 1e-4, `${tag} ${n} vs cpu`, floors[i]));
    }
  }
});

test('LayerNorm float64 gradient reference vs central finite differences', (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(12);
  const N = 3, d = 7, eps = 1e-5, h = 1e-6;
  const x = f64(randn(rng, N * d, 2, 1)), g = f64(randn(rng, d, 0.3, 1)), b = f64(randn(rng, d)), dy = f64(randn(rng, N * d));
  const [dx, dg, db] = layerNormGrad64(dy, x, g, N, d, eps);
  const loss = (xx: Float64Array, gg: Float64Array, bb: Float64Array) => dot(layerNorm64(xx, gg, bb, N, d, eps).y, dy);
  for (const [arr, grad, name] of [[x, dx, 'x'], [g, dg, 'gamma'], [b, db, 'beta']] as const) {
    const u = f64(randn(rng, arr.length));
    const plus = arr.map((v, i) => v + h * u[i]), minus = arr.map((v, i) => v - h * u[i]);
    const args = (a: Float64Array) => (name === 'x' ? [a, g, b] : name === 'gamma' ? [x, a, b] : [x, g, a]) as [Float64Array, Float64Array, Float64Array];
    const fd = (loss(...args(plus)) - loss(...args(minus))) / (2 * h);
    close([dot(grad, u)], [fd], 1e-6, `LayerNorm d/d${name}`);
  }
});

test('RtLayerNorm with 2 threads matches 1 thread (rows split across threads)', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(13);
  const N = 67, d = 768, eps = 1e-5;
  const x = randn(rng, N * d), g = randn(rng, d, 0.3, 1), b = randn(rng, d), dy = randn(rng, N * d);
  const inputs = [{ data: x, shape: [N, d] }, { data: g, shape: [d] }, { data: b, shape: [d] }];
  const one = run(ln(eps), inputs, dy);
  await setThreads(2);
  try {
    const two = run(ln(eps), inputs, dy);
    close(two.y, one.y, 0, 'y');
    close(two.grads[0], one.grads[0], 0, 'dx');
    close(two.grads[1], one.grads[1], 1e-6, 'dgamma'); // per-thread partial sums: another summation order
    close(two.grads[2], one.grads[2], 1e-6, 'dbeta');
    const ref = layerNormGrad64(f64(dy), f64(x), f64(g), N, d, eps);
    close(two.grads[1], ref[1], 1e-5, 'dgamma vs float64');
  } finally {
    await setThreads(1);
  }
});

// ---- RMSNorm -----------------------------------------------------------------------------------

const rms = (eps: number) => (x: tf.Tensor, w: tf.Tensor) => rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, eps);

test('RtRmsNorm forward and gradient vs float64 reference and the cpu composed path', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(21);
  const eps = 1e-6;
  for (const N of NS) {
    for (const d of DS) {
      const x = randn(rng, N * d, 2, 0.5), w = randn(rng, d, 0.3, 1), dy = randn(rng, N * d);
      const inputs = [{ data: x, shape: [N, d] }, { data: w, shape: [d] }];
      const before = tf.memory().numTensors;
      const got = run(rms(eps), inputs, dy);
      assert.equal(tf.memory().numTensors, before, `N ${N} d ${d}: leaked tensors`);
      const ref = rmsNorm64(f64(x), f64(w), N, d, eps);
      const refG = rmsNormGrad64(f64(dy), f64(x), f64(w), N, d, eps);
      const tag = `RMSNorm N ${N} d ${d}`;
      // dx = rstd * g - x rstd^3 mean(g x) cancels to ~eps at d = 1: judge it at the scale of rstd * g.
      const floors = [termScale(ref.rstd, dy, w, N, d), 0];
      close(got.y, ref.y, 1e-5, `${tag} y`);
      ['dx', 'dweight'].forEach((n, i) => close(got.grads[i], refG[i], 1e-5, `${tag} ${n}`, floors[i]));
      const cpu = await onCpu(() => run(rms(eps), inputs, dy));
      close(got.y, cpu.y, 1e-5, `${tag} y vs cpu`);
      ['dx', 'dweight'].forEach((n, i) => close(got.grads[i], cpu.grads[i], 1e-4, `${tag} ${n} vs cpu`, floors[i]));
    }
  }
});

test('RMSNorm float64 gradient reference vs central finite differences', (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(22);
  const N = 3, d = 7, eps = 1e-6, h = 1e-6;
  const x = f64(randn(rng, N * d, 2)), w = f64(randn(rng, d, 0.3, 1)), dy = f64(randn(rng, N * d));
  const [dx, dw] = rmsNormGrad64(dy, x, w, N, d, eps);
  const loss = (xx: Float64Array, ww: Float64Array) => dot(rmsNorm64(xx, ww, N, d, eps).y, dy);
  for (const [arr, grad, name] of [[x, dx, 'x'], [w, dw, 'weight']] as const) {
    const u = f64(randn(rng, arr.length));
    const plus = arr.map((v, i) => v + h * u[i]), minus = arr.map((v, i) => v - h * u[i]);
    const fd = name === 'x' ? (loss(plus, w) - loss(minus, w)) / (2 * h) : (loss(x, plus) - loss(x, minus)) / (2 * h);
    close([dot(grad, u)], [fd], 1e-6, `RMSNorm d/d${name}`);
  }
});

test('RtRmsNorm with 2 threads matches 1 thread', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(23);
  const N = 67, d = 768, eps = 1e-6;
  const x = randn(rng, N * d), w = randn(rng, d, 0.3, 1), dy = randn(rng, N * d);
  const inputs = [{ data: x, shape: [N, d] }, { data: w, shape: [d] }];
  const one = run(rms(eps), inputs, dy);
  await setThreads(2);
  try {
    const two = run(rms(eps), inputs, dy);
    close(two.y, one.y, 0, 'y');
    close(two.grads[0], one.grads[0], 0, 'dx');
    close(two.grads[1], one.grads[1], 1e-6, 'dweight');
  } finally {
    await setThreads(1);
  }
});

// ---- edge cases --------------------------------------------------------------------------------

test('norm kernels: N = 0 gives empty outputs, mismatched shapes throw NativeKernelError', (t) => {
  if (skip) return t.skip(skip);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const y = layerNorm(tf.zeros([0, 5]) as tf.Tensor2D, tf.ones([5]) as tf.Tensor1D, tf.zeros([5]) as tf.Tensor1D, 1e-5);
    assert.deepEqual(y.shape, [0, 5]);
    const z = rmsNorm(tf.zeros([0, 5]) as tf.Tensor2D, tf.ones([5]) as tf.Tensor1D, 1e-5);
    assert.deepEqual(z.shape, [0, 5]);
    assert.throws(() => runKernel('RtLayerNorm', { x: tf.zeros([3, 4]), gamma: tf.ones([5]), beta: tf.zeros([4]) }, { eps: 1e-5 }),
      (e: unknown) => e instanceof NativeKernelError && /RtLayerNorm.*\[3,4\].*\[5\]/.test((e as Error).message));
    assert.throws(() => runKernel('RtRmsNormGrad', { dy: tf.zeros([3, 4]), x: tf.zeros([3, 4]), weight: tf.ones([4]), rstd: tf.ones([2]) }),
      (e: unknown) => e instanceof NativeKernelError && /RtRmsNormGrad/.test((e as Error).message));
    assert.throws(() => runKernel('RtRmsNorm', { x: tf.zeros([3, 4], 'int32'), weight: tf.ones([4]) }, { eps: 1e-5 }), NativeKernelError);
  });
  assert.equal(tf.memory().numTensors, before);
});
