/**
 * Native activation kernels (RtGeluTanh, RtGeluErf, RtSilu, RtSwiGlu and their Grad kernels, via
 * src/model/layers/activations.ts and mlp.ts) against:
 *   - independent float64 loops of the published formulas (HF ACT2FN: gelu_new = tanh approximation,
 *     gelu = exact erf, silu) and their float64 analytic derivatives,
 *   - float64 central finite differences of those references,
 *   - the composed tfjs path on the 'cpu' backend.
 * Always runs on the native backend (skipped when the addon is not built), whatever RINGTUNE_BACKEND says.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, setThreads } from '../../../src/model/backend.ts';
import { geluErf, geluTanh, silu } from '../../../src/model/layers/activations.ts';
import { swiGluProduct } from '../../../src/model/layers/mlp.ts';
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

const C = Math.sqrt(2 / Math.PI), A = 0.044715;

/** erf by its Taylor series for |z| < 3 and erfc by its continued fraction beyond (A&S 7.1.5, 7.1.14). */
function erfc64(z: number): number {
  if (Math.abs(z) < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  const a = Math.abs(z);
  let k = a;
  for (let n = 80; n >= 1; n--) k = a + n / 2 / k;
  const tail = Math.exp(-a * a) / (Math.sqrt(Math.PI) * k);
  return z > 0 ? tail : 2 - tail;
}

/**
 * f, f' and the size of the terms f' sums (|f'| can cancel to ~0 at the derivative's root, e.g. silu at
 * x ~ -1.28, where a float result is only accurate relative to those terms).
 * gelu_new is written as 0.5 x (1 + tanh z) = x / (1 + exp(-2z)) and 0.5 (1 - tanh^2 z) = 2 s (1 - s) with
 * s = 1 / (1 + exp(-2z)): the same function, but 1 + tanh(z) cancels to 0 in float64 for z < -19, where the
 * true value is still ~1e-17 (the published form is checked against this one below).
 */
interface Ref { f: (x: number) => number; df: (x: number) => number; dfTerms: (x: number) => number }
const sig = (v: number) => 1 / (1 + Math.exp(-v));
const gtZ = (x: number) => C * (x + A * x ** 3);
const refs: Record<'geluTanh' | 'geluErf' | 'silu', Ref> = {
  geluTanh: {
    f: (x) => x * sig(2 * gtZ(x)),
    df: (x) => {
      const s = sig(2 * gtZ(x)), oneMinusS = sig(-2 * gtZ(x));
      return s + 2 * x * s * oneMinusS * C * (1 + 3 * A * x * x);
    },
    dfTerms: (x) => {
      const s = sig(2 * gtZ(x)), oneMinusS = sig(-2 * gtZ(x));
      return s + Math.abs(2 * x * s * oneMinusS * C * (1 + 3 * A * x * x));
    },
  },
  geluErf: {
    f: (x) => 0.5 * x * erfc64(-x / Math.SQRT2),
    df: (x) => 0.5 * erfc64(-x / Math.SQRT2) + (x * Math.exp(-x * x / 2)) / Math.sqrt(2 * Math.PI),
    dfTerms: (x) => 0.5 * erfc64(-x / Math.SQRT2) + Math.abs(x * Math.exp(-x * x / 2)) / Math.sqrt(2 * Math.PI),
  },
  silu: {
    f: (x) => x * sig(x),
    df: (x) => sig(x) * (1 + x * sig(-x)),
    dfTerms: (x) => sig(x) * (1 + Math.abs(x * sig(-x))),
  },
};

// ---- helpers -----------------------------------------------------------------------------------

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

/** |a - e| <= rtol * (|e| + floor[i]) + atol elementwise (floor: the size of the terms e is made of). */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string,
  floor?: ArrayLike<number>): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= rtol * (Math.abs(expected[i]) + (floor ? floor[i] : 0)) + atol)) {
      assert.fail(`${what}: at ${i} got ${actual[i]}, want ${expected[i]} (error ${err.toExponential(2)})`);
    }
  }
}

function run(f: (...ts: tf.Tensor[]) => tf.Tensor, inputs: Float32Array[], shape: number[], dy: Float32Array) {
  return tf.tidy(() => {
    const ts = inputs.map((d) => tf.tensor(d, shape));
    const y = f(...ts);
    const grads = tf.grads((...a: tf.Tensor[]) => f(...a))(ts, tf.tensor(dy, shape));
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

/** Inputs: N(0, 3^2) plus a fixed ramp over [-12, 12] and the awkward points 0, +-tiny, +-large. */
function inputsFor(rng: Rng, n: number): Float32Array {
  const x = randn(rng, n, 3);
  const special = [0, -0, 1e-30, -1e-30, 1e-4, -1e-4, 12, -12, 20, -20];
  for (let i = 0; i < n; i++) if (i % 5 === 0) x[i] = -12 + (24 * i) / n;
  for (let i = 0; i < Math.min(n, special.length); i++) x[i * 3 % n] = special[i];
  return x;
}

const layerFns = { geluTanh, geluErf, silu } as const;

// Relative tolerances 1e-5, with an absolute floor of 1e-30 (float32 results below that underflow or lose
// digits to the rounding of exp's argument, harmlessly). The erf of the cpu path (tf.erf, Abramowitz
// & Stegun 7.1.26, absolute error 1.5e-7) and the composed 0.5 x (1 + tanh z), whose 1 + tanh z rounds to 0
// for x < ~-5, are only accurate in absolute terms there, so the cpu comparisons have an absolute floor of 1e-5.
for (const name of ['geluTanh', 'geluErf', 'silu'] as const) {
  test(`Rt${name[0].toUpperCase()}${name.slice(1)} forward and gradient vs float64 reference and the cpu composed path`, async (t) => {
    if (skip) return t.skip(skip);
    const rng = new Rng(name.length * 7);
    const ref = refs[name], f = layerFns[name];
    for (const N of NS) {
      for (const d of DS) {
        const x = inputsFor(rng, N * d), dy = randn(rng, N * d);
        const before = tf.memory().numTensors;
        const got = run(f, [x], [N, d], dy);
        assert.equal(tf.memory().numTensors, before, `N ${N} d ${d}: leaked tensors`);
        const y64 = Array.from(x, ref.f), dx64 = Array.from(x, (v, i) => dy[i] * ref.df(v));
        const terms = Array.from(x, (v, i) => Math.abs(dy[i]) * ref.dfTerms(v));
        const tag = `${name} N ${N} d ${d}`;
        close(got.y, y64, 1e-5, 1e-30, `${tag} y`);
        close(got.grads[0], dx64, 1e-5, 1e-30, `${tag} dx`, terms);
        const cpu = await onCpu(() => run(f, [x], [N, d], dy));
        close(got.y, cpu.y, 1e-5, 1e-5, `${tag} y vs cpu`);
        close(got.grads[0], cpu.grads[0], 1e-4, 1e-5, `${tag} dx vs cpu`, terms);
      }
    }
  });
}

test('activation float64 derivatives vs central finite differences', (t) => {
  if (skip) return t.skip(skip);
  const h = 1e-5;
  const published = (x: number) => 0.5 * x * (1 + Math.tanh(C * (x + A * x ** 3)));
  for (const [name, ref] of Object.entries(refs)) {
    for (let x = -9; x <= 9; x += 0.37) {
      const fd = (ref.f(x + h) - ref.f(x - h)) / (2 * h);
      close([ref.df(x)], [fd], 1e-7, 1e-10, `${name}'(${x})`);
      if (name === 'geluTanh') close([ref.f(x)], [published(x)], 1e-12, 1e-15, `gelu_new(${x}) vs the published form`);
    }
  }
  // The erf reference itself, against known values (Abramowitz & Stegun table 7.1).
  close([1 - erfc64(0.5), 1 - erfc64(1), 1 - erfc64(2), erfc64(3.5), erfc64(-1)],
    [0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 7.430983723414128e-7, 1.8427007929497148], 1e-14, 0, 'erf64');
});

test('RtSwiGlu forward and gradient vs float64 reference and the cpu composed path', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(31);
  const silu64 = refs.silu;
  for (const N of NS) {
    for (const d of DS) {
      const g = inputsFor(rng, N * d), u = randn(rng, N * d, 2), dy = randn(rng, N * d);
      const before = tf.memory().numTensors;
      const f = (a: tf.Tensor, b: tf.Tensor) => swiGluProduct(a as tf.Tensor2D, b as tf.Tensor2D);
      const got = run(f, [g, u], [N, d], dy);
      assert.equal(tf.memory().numTensors, before, `N ${N} d ${d}: leaked tensors`);
      const y64 = Array.from(g, (v, i) => silu64.f(v) * u[i]);
      const dg64 = Array.from(g, (v, i) => dy[i] * u[i] * silu64.df(v));
      const terms = Array.from(g, (v, i) => Math.abs(dy[i] * u[i]) * silu64.dfTerms(v));
      const du64 = Array.from(g, (v, i) => dy[i] * silu64.f(v));
      const tag = `swiglu N ${N} d ${d}`;
      close(got.y, y64, 1e-5, 1e-30, `${tag} y`);
      close(got.grads[0], dg64, 1e-5, 1e-30, `${tag} dg`, terms);
      close(got.grads[1], du64, 1e-5, 1e-30, `${tag} du`);
      const cpu = await onCpu(() => run(f, [g, u], [N, d], dy));
      close(got.y, cpu.y, 1e-5, 1e-5, `${tag} y vs cpu`);
      close(got.grads[0], cpu.grads[0], 1e-4, 1e-6, `${tag} dg vs cpu`, terms);
      close(got.grads[1], cpu.grads[1], 1e-4, 1e-6, `${tag} du vs cpu`);
    }
  }
});

test('activation kernels on 2 threads match 1 thread; NaN and inf in, sensible out', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(41);
  const shape = [37, 3072], n = 37 * 3072;
  const x = inputsFor(rng, n), u = randn(rng, n), dy = randn(rng, n);
  const all = () => [geluTanh, geluErf, silu].map((f) => run(f, [x], shape, dy))
    .concat(run((a, b) => swiGluProduct(a as tf.Tensor2D, b as tf.Tensor2D), [x, u], shape, dy));
  const one = all();
  await setThreads(2);
  try {
    const two = all();
    two.forEach((r, i) => {
      close(r.y, one[i].y, 0, 0, `fn ${i} y`);
      r.grads.forEach((g, j) => close(g, one[i].grads[j], 0, 0, `fn ${i} grad ${j}`));
    });
  } finally {
    await setThreads(1);
  }
  const odd = new Float32Array([NaN, Infinity, -Infinity, 100, -100]);
  for (const f of [geluTanh, geluErf, silu]) {
    const y = tf.tidy(() => f(tf.tensor(odd)).dataSync().slice());
    assert.ok(Number.isNaN(y[0]), `${f.name}(NaN)`);
    assert.equal(y[1], Infinity, `${f.name}(inf)`);
    assert.equal(y[3], 100, `${f.name}(100)`);
    assert.ok(Math.abs(y[4]) < 1e-30, `${f.name}(-100) = ${y[4]}`);
  }
});

test('activation kernels: empty tensors, mismatched shapes throw NativeKernelError', (t) => {
  if (skip) return t.skip(skip);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    assert.deepEqual(geluTanh(tf.zeros([0, 4])).shape, [0, 4]);
    assert.deepEqual(swiGluProduct(tf.zeros([0, 4]) as tf.Tensor2D, tf.zeros([0, 4]) as tf.Tensor2D).shape, [0, 4]);
    assert.throws(() => runKernel('RtSwiGlu', { g: tf.zeros([3, 4]), u: tf.zeros([4, 3]) }),
      (e: unknown) => e instanceof NativeKernelError && /RtSwiGlu.*\[3,4\].*\[4,3\]/.test((e as Error).message));
    assert.throws(() => runKernel('RtGeluTanhGrad', { dy: tf.zeros([3]), x: tf.zeros([4]) }), NativeKernelError);
  });
  assert.equal(tf.memory().numTensors, before);
});
