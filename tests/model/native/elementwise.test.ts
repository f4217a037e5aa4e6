/**
 * Native standard kernels (src/model/native/kernels/elementwise.ts) against tfjs-backend-cpu's own
 * kernels run on the same inputs (bit-identical where the cpu backend's float64-then-round equals one
 * float32 op, within 1e-6 relative for exp/log/tanh/sigmoid/softmax and the sums), and against
 * independent float64 loops of the formulas. Sweeps ranks 0-5, broadcast patterns, sizes 0/1/odd and
 * sizes large enough to be threaded; int32 where the kernel moves data. Skipped where the addon is not
 * built, unless RINGTUNE_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/model/backend.ts';
import { loadAddon } from '../../../src/model/native/addon.ts';
import { NativeKernelError, type NativeBackend } from '../../../src/model/native/backend.ts';
import { elementwiseKernels, runCpuKernel } from '../../../src/model/native/kernels/elementwise.ts';
import { Rng } from '../../../src/util/rng.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;
const ready = addon ? initBackend('native', () => {}) : Promise.resolve();
const backend = () => tf.engine().backend as NativeBackend;

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const rng = new Rng(7);
const randn = (s: number[], scale = 1) => tf.tensor(Float32Array.from({ length: size(s) }, () => scale * rng.normal()), s, 'float32');
const randi = (s: number[], n = 1000) => tf.tensor(Int32Array.from({ length: size(s) }, () => rng.int(2 * n) - n), s, 'int32');

/** Runs kernel `name` natively (through the engine) and as the cpu kernel on the same inputs. */
function both(name: string, inputs: tf.NamedTensorMap | tf.Tensor[], attrs: tf.NamedAttrMap = {}) {
  assert.ok(elementwiseKernels.some((k) => k.kernelName === name), `${name} is a native kernel`);
  const nat = tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs) as tf.Tensor;
  const ref = runCpuKernel(name, { inputs: inputs as unknown as tf.NamedTensorInfoMap, attrs, backend: backend() }) as tf.TensorInfo;
  // Some cpu kernels (Abs) return a tensor they made through the engine; the engine uses those as they are.
  const cpu = ref instanceof tf.Tensor ? ref : tf.engine().makeTensorFromTensorInfo(ref);
  const r = { nat: nat.dataSync(), cpu: cpu.dataSync(), natShape: nat.shape, cpuShape: cpu.shape, natDtype: nat.dtype, cpuDtype: cpu.dtype };
  tf.dispose([nat, cpu]);
  return r;
}

function assertSame(r: ReturnType<typeof both>, what: string) {
  assert.deepEqual(r.natShape, r.cpuShape, `${what}: shape`);
  assert.equal(r.natDtype, r.cpuDtype, `${what}: dtype`);
  assert.equal(r.nat.length, r.cpu.length, `${what}: length`);
  for (let i = 0; i < r.nat.length; i++) {
    if (!Object.is(r.nat[i], r.cpu[i]) && !(Number.isNaN(r.nat[i]) && Number.isNaN(r.cpu[i]))) {
      assert.fail(`${what}: element ${i} is ${r.nat[i]} natively, ${r.cpu[i]} on cpu`);
    }
  }
}

/** |a - b| <= rel * |b| + abs elementwise; NaN must match NaN, infinities must match. */
function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, abs: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i]) || !Number.isFinite(b[i])) {
      assert.ok(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])), `${what}: element ${i} is ${a[i]}, want ${b[i]}`);
      continue;
    }
    if (!(Math.abs(a[i] - b[i]) <= rel * Math.abs(b[i]) + abs)) assert.fail(`${what}: element ${i} is ${a[i]}, want ${b[i]} (rel ${rel}, abs ${abs})`);
  }
}

async function noLeaks(fn: () => void) {
  await ready;
  const before = tf.memory().numTensors;
  fn();
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
}

// ----------------------------------------------------------------------------------- binary

const BROADCASTS: [number[], number[]][] = [
  [[], []], [[5], []], [[], [7]], [[1], [1]], [[3, 4], [3, 4]], [[3, 4], [4]], [[3, 4], [3, 1]], [[3, 1], [1, 4]],
  [[2, 3, 4], [3, 1]], [[2, 1, 4, 5], [3, 1, 1]], [[2, 5, 3, 7], [1, 5, 1, 7]], [[17, 33], [17, 1]], [[1, 33], [17, 1]],
  [[0, 3], [3]], [[4, 0], [4, 1]], [[2, 3, 1, 5], [2, 1, 4, 1]], [[300, 257], [257]], [[300, 257], [300, 1]], [[70001], [70001]],
];

/** float64 reference of a broadcast binary op, by explicit index arithmetic. */
function broadcast64(a: tf.Tensor, b: tf.Tensor, f: (x: number, y: number) => number): Float64Array {
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const av = a.dataSync(), bv = b.dataSync();
  const out = new Float64Array(size(shape));
  const pa = [...new Array(shape.length - a.rank).fill(1), ...a.shape], pb = [...new Array(shape.length - b.rank).fill(1), ...b.shape];
  for (let i = 0; i < out.length; i++) {
    let rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      if (pa[d] > 1) ia += c * sa;
      if (pb[d] > 1) ib += c * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    out[i] = f(av[ia], bv[ib]);
  }
  return out;
}

const BINARY: Record<string, (x: number, y: number) => number> = {
  Add: (x, y) => x + y, Sub: (x, y) => x - y, Multiply: (x, y) => x * y, RealDiv: (x, y) => x / y,
  Maximum: Math.max, Minimum: Math.min, SquaredDifference: (x, y) => (x - y) * (x - y),
};

test('binary kernels broadcast exactly like the cpu backend, bit for bit, over ranks 0-4 and sizes 0/1/odd/threaded', { skip }, () =>
  noLeaks(() => {
    for (const [sa, sb] of BROADCASTS) {
      for (const [name, f] of Object.entries(BINARY)) {
        for (const [x, y] of [[sa, sb], [sb, sa]]) {
          const a = randn(x, 3), b = randn(y, 3);
          const r = both(name, { a, b });
          assertSame(r, `${name} [${x}] [${y}]`);
          assertClose(r.nat, Float32Array.from(broadcast64(a, b, f)), 0, 0, `${name} [${x}] [${y}] vs float64`);
          tf.dispose([a, b]);
        }
      }
    }
  }));

test('Pow matches the cpu backend within 1e-6 relative', { skip }, () =>
  noLeaks(() => {
    for (const [sa, sb] of BROADCASTS.slice(0, 12)) {
      const a = tf.tidy(() => tf.abs(randn(sa, 2))), b = randn(sb, 2);
      const r = both('Pow', { a, b });
      assert.deepEqual(r.natShape, r.cpuShape);
      assertClose(r.nat, r.cpu, 1e-6, 0, `Pow [${sa}] [${sb}]`);
      tf.dispose([a, b]);
    }
  }));

test('binary special values: NaN, infinities and signed zeros as Math.max/min and IEEE arithmetic', { skip }, () =>
  noLeaks(() => {
    const vals = [0, -0, 1, -1, Infinity, -Infinity, NaN, 3.5, -2.25, 1e-45, 3e38];
    const xs = vals.flatMap((v) => vals.map(() => v)), ys = vals.flatMap(() => vals);
    const a = tf.tensor1d(xs), b = tf.tensor1d(ys);
    for (const name of [...Object.keys(BINARY), 'Pow']) assertSame(both(name, { a, b }), `${name} specials`);
    tf.dispose([a, b]);
  }));

test('binary kernels on int32 run the cpu kernel and keep int32', { skip }, () =>
  noLeaks(() => {
    const a = randi([3, 4]), b = randi([4], 50);
    for (const name of ['Add', 'Sub', 'Multiply', 'Maximum', 'Minimum']) {
      const r = both(name, { a, b });
      assert.equal(r.natDtype, 'int32');
      assertSame(r, `${name} int32`);
    }
    tf.dispose([a, b]);
  }));

test('shapes that do not broadcast are a NativeKernelError naming the op and the shapes', { skip }, async () => {
  await ready;
  const a = tf.zeros([3, 4]), b = tf.zeros([5]);
  assert.throws(() => tf.engine().runKernel('Add', { a, b }, {}), (e: Error) => e instanceof NativeKernelError && /Add/.test(e.message) && /\[3,4\]/.test(e.message) && /\[5\]/.test(e.message));
  tf.dispose([a, b]);
});

// ----------------------------------------------------------------------------------- unary

const SPECIALS = [0, -0, 1, -1, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1e-38, 1.5e-39, 88.7, 88.8, -87.5, -103, -104.5, 100, -100,
  0.5, 0.624, 0.626, -0.625, 9, -9, 20, 1e-7, -1e-7, 3e38, 0.9999999, 1.0000001];

const UNARY64: Record<string, (x: number) => number> = {
  Exp: Math.exp, Log: Math.log, Tanh: Math.tanh, Sigmoid: (x) => 1 / (1 + Math.exp(-x)), Sqrt: Math.sqrt, Rsqrt: (x) => 1 / Math.sqrt(x),
  Neg: (x) => -x, Square: (x) => x * x, Abs: Math.abs, Reciprocal: (x) => 1 / x, Relu: (x) => Math.max(0, x),
};
const EXACT = new Set(['Sqrt', 'Rsqrt', 'Neg', 'Square', 'Abs', 'Reciprocal', 'Relu']);

test('unary kernels: exact ops bit-identical to cpu, exp/log/tanh/sigmoid/erf within 1e-6 relative, incl. specials', { skip }, () =>
  noLeaks(() => {
    for (const shape of [[], [1], [7], [3, 5], [2, 3, 4, 5], [0, 4], [100003]]) {
      const base = Float32Array.from({ length: size(shape) }, (_, i) => (i < SPECIALS.length && shape.length === 1 ? SPECIALS[i] : 4 * rng.normal()));
      const x = tf.tensor(base, shape, 'float32');
      const pos = tf.abs(x);
      for (const name of [...Object.keys(UNARY64), 'Erf']) {
        const input = name === 'Log' && shape.length > 1 ? pos : x;
        const r = both(name, { x: input });
        if (EXACT.has(name)) assertSame(r, `${name} [${shape}]`);
        else {
          assert.deepEqual(r.natShape, r.cpuShape);
          // abs: float32 denormals near underflow carry no relative precision.
          assertClose(r.nat, r.cpu, 1e-6, name === 'Erf' ? 1e-7 : 1e-37, `${name} [${shape}]`);
        }
        if (name !== 'Erf') {
          const iv = input.dataSync();
          assertClose(r.nat, Float32Array.from(iv, UNARY64[name]), EXACT.has(name) ? 0 : 1e-6, EXACT.has(name) ? 0 : 1e-37, `${name} [${shape}] vs float64`);
        }
      }
      tf.dispose([x, pos]);
    }
  }));

test('exp, log, tanh and sigmoid stay within 3 ulp of float64 over their whole float32 range', { skip }, () =>
  noLeaks(() => {
    const ulp = (v: number) => {
      const f = Math.fround(Math.abs(v));
      if (f === 0) return 1.4e-45;
      const buf = new Float32Array([f]);
      new Int32Array(buf.buffer)[0]++;
      return Math.max(buf[0] - f, 1.4e-45);
    };
    const check = (name: string, lo: number, hi: number, n: number, f: (x: number) => number, geometric = false) => {
      const xs = Float32Array.from({ length: n }, (_, i) => (geometric ? lo * (hi / lo) ** (i / (n - 1)) : lo + ((hi - lo) * i) / (n - 1)));
      const x = tf.tensor1d(xs);
      const y = tf.engine().runKernel(name, { x }, {}) as tf.Tensor;
      const yv = y.dataSync();
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const want = f(xs[i]);
        if (!Number.isFinite(want)) continue;
        worst = Math.max(worst, Math.abs(yv[i] - want) / ulp(want));
      }
      assert.ok(worst <= 3, `${name} on [${lo}, ${hi}]: worst error ${worst.toFixed(2)} ulp`);
      tf.dispose([x, y]);
    };
    check('Exp', -87, 88.7, 200001, Math.exp);
    check('Exp', -103, -87, 2001, Math.exp); // denormal results (ulp there is absolute)
    check('Log', 1e-38, 3e38, 200001, Math.log, true);
    check('Log', 0.5, 2, 100001, Math.log);
    check('Log', 1e-45, 1e-38, 2001, Math.log, true);
    check('Tanh', -10, 10, 200001, Math.tanh);
    check('Sigmoid', -80, 30, 200001, (v) => 1 / (1 + Math.exp(-v)));
  }));

test('unary kernels on int32 run the cpu kernel', { skip }, () =>
  noLeaks(() => {
    const x = randi([5, 3]);
    for (const name of ['Neg', 'Abs', 'Square', 'Relu']) assertSame(both(name, { x }), `${name} int32`);
    tf.dispose(x);
  }));

// ----------------------------------------------------------------------------------- reductions

/** float64 reduction over `axes` (the reference for Sum/Mean/Max/Min). */
function reduce64(x: tf.Tensor, axes: number[], op: 'Sum' | 'Mean' | 'Max' | 'Min'): Float64Array {
  const shape = x.shape, xv = x.dataSync();
  const ax = tf.util.parseAxisParam(axes, shape);
  const outShape = shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const out = new Float64Array(size(outShape)).fill(op === 'Max' ? -Infinity : op === 'Min' ? Infinity : 0);
  const R = size(ax.map((a) => shape[a]));
  const nan = new Uint8Array(out.length);
  for (let i = 0; i < xv.length; i++) {
    let rem = i, o = 0, st = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      if (outShape[d] > 1) o += c * st;
      st *= outShape[d];
    }
    const v = xv[i];
    if (Number.isNaN(v)) nan[o] = 1;
    out[o] = op === 'Max' ? Math.max(out[o], v) : op === 'Min' ? Math.min(out[o], v) : out[o] + (op === 'Mean' ? v / R : v);
  }
  for (let i = 0; i < out.length; i++) if (nan[i]) out[i] = NaN;
  if (R === 0 && (op === 'Max' || op === 'Min')) out.fill(NaN);
  return out;
}

test('Sum, Mean, Max, Min over every axis set (contiguous, split, negative), keepDims, sizes 0/1/odd/threaded', { skip }, () =>
  noLeaks(() => {
    const cases: [number[], number[][]][] = [
      [[7], [[0], [-1], []]],
      [[1], [[0]]],
      [[5, 9], [[0], [1], [0, 1], [-1]]],
      [[3, 4, 5], [[0], [1], [2], [0, 1], [1, 2], [0, 2], [2, 0], [0, 1, 2]]],
      [[2, 3, 1, 5], [[0], [3], [1, 2], [0, 3], [1, 3], [0, 2, 3]]],
      [[3, 0, 4], [[1], [0], [2], [0, 2]]],
      [[1024, 129], [[-1], [0]]],
      [[64, 3, 2049], [[2], [0], [0, 2]]],
    ];
    for (const [shape, axesList] of cases) {
      const x = randn(shape, 2);
      for (const axes of axesList) {
        for (const keepDims of [false, true]) {
          for (const op of ['Sum', 'Mean', 'Max', 'Min'] as const) {
            const attrs: tf.NamedAttrMap = op === 'Max' ? { reductionIndices: axes, keepDims } : { axis: axes, keepDims };
            const r = both(op, { x }, attrs);
            const what = `${op} [${shape}] axes [${axes}] keepDims ${keepDims}`;
            assert.deepEqual(r.natShape, r.cpuShape, `${what}: shape`);
            if (op === 'Max' || op === 'Min') assertSame(r, what);
            else {
              // Error bound of a float64 sum rounded to float32: relative to the sum of |x| over the row.
              assertClose(r.nat, r.cpu, 1e-6, 1e-6, what);
            }
            assertClose(r.nat, Float32Array.from(reduce64(x, axes, op)), op === 'Max' || op === 'Min' ? 0 : 1e-6, op === 'Max' || op === 'Min' ? 0 : 1e-5, `${what} vs float64`);
          }
        }
      }
      tf.dispose(x);
    }
  }));

test('Max and Min propagate NaN like the cpu backend', { skip }, () =>
  noLeaks(() => {
    const x = tf.tensor2d([[1, NaN, 3], [NaN, -1, 2], [4, 5, 6], [-0, 0, -0]]);
    for (const op of ['Max', 'Min']) {
      const key = op === 'Max' ? 'reductionIndices' : 'axis';
      assertSame(both(op, { x }, { [key]: [1], keepDims: false }), `${op} rows`);
      assertSame(both(op, { x }, { [key]: [0], keepDims: false }), `${op} cols`);
    }
    tf.dispose(x);
  }));

test('Sum of int32 and of bool runs the cpu kernel', { skip }, () =>
  noLeaks(() => {
    const x = randi([4, 6]);
    const r = both('Sum', { x }, { axis: [1], keepDims: false });
    assert.equal(r.natDtype, 'int32');
    assertSame(r, 'Sum int32');
    tf.dispose(x);
  }));

// ----------------------------------------------------------------------------------- softmax

test('Softmax over the last axis matches the cpu backend and a float64 softmax within 1e-6', { skip }, () =>
  noLeaks(() => {
    for (const shape of [[1], [1, 1], [3, 5], [2, 3, 129], [2, 4, 16, 16], [64, 4096], [0, 5]]) {
      const logits = randn(shape, 8);
      const r = both('Softmax', { logits }, { dim: -1 });
      assert.deepEqual(r.natShape, r.cpuShape);
      assertClose(r.nat, r.cpu, 1e-6, 1e-12, `Softmax [${shape}]`);
      const lv = logits.dataSync(), cols = shape[shape.length - 1];
      const want = new Float32Array(lv.length);
      for (let r0 = 0; r0 < lv.length; r0 += cols) {
        let m = -Infinity, s = 0;
        for (let j = 0; j < cols; j++) m = Math.max(m, lv[r0 + j]);
        for (let j = 0; j < cols; j++) s += Math.exp(lv[r0 + j] - m);
        for (let j = 0; j < cols; j++) want[r0 + j] = Math.exp(lv[r0 + j] - m) / s;
      }
      assertClose(r.nat, want, 1e-6, 1e-12, `Softmax [${shape}] vs float64`);
      tf.dispose(logits);
    }
  }));

// ----------------------------------------------------------------------------------- data movement

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => [...Array(n).keys()].map((i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

test('Transpose: every permutation of ranks 1-4, shapes with 1s, 0 and odd sizes, float32 and int32, bit-identical', { skip }, () =>
  noLeaks(() => {
    const shapes = [[5], [3, 7], [1, 9], [4, 3, 5], [2, 1, 3], [2, 3, 4, 5], [3, 1, 5, 1], [2, 0, 3], [8, 4, 33, 17]];
    for (const shape of shapes) {
      for (const perm of permutations(shape.length)) {
        for (const x of [randn(shape), randi(shape)]) {
          assertSame(both('Transpose', { x }, { perm }), `Transpose ${x.dtype} [${shape}] perm [${perm}]`);
          x.dispose();
        }
      }
    }
    const big = randn([300, 517]);
    assertSame(both('Transpose', { x: big }, { perm: [1, 0] }), 'Transpose [300,517]');
    const r5 = randn([2, 3, 4, 5, 6]);
    assertSame(both('Transpose', { x: r5 }, { perm: [4, 2, 0, 3, 1] }), 'Transpose rank 5');
    tf.dispose([big, r5]);
  }));

test('a perm that is not a permutation is a NativeKernelError', { skip }, async () => {
  await ready;
  const x = tf.zeros([2, 3]);
  assert.throws(() => tf.engine().runKernel('Transpose', { x }, { perm: [0, 0] }), (e: Error) => e instanceof NativeKernelError && /Transpose/.test(e.message) && /\[2,3\]/.test(e.message));
  x.dispose();
});

test('Slice: random boxes over ranks 1-4 (whole, partial, empty, -1 sizes), float32 and int32, bit-identical', { skip }, () =>
  noLeaks(() => {
    for (const shape of [[9], [4, 7], [3, 1, 5], [2, 3, 4, 5], [5, 0, 2], [40, 33, 7]]) {
      for (let trial = 0; trial < 12; trial++) {
        const begin = shape.map((d) => rng.int(d + 1));
        const sz = shape.map((d, i) => (trial % 4 === 0 ? -1 : rng.int(d - begin[i] + 1)));
        for (const x of [randn(shape), randi(shape)]) {
          assertSame(both('Slice', { x }, { begin, size: sz }), `Slice ${x.dtype} [${shape}] begin [${begin}] size [${sz}]`);
          x.dispose();
        }
      }
    }
  }));

test('Slice outside the tensor is an error naming the op', { skip }, async () => {
  await ready;
  const x = tf.zeros([4, 4]);
  assert.throws(() => tf.engine().runKernel('Slice', { x }, { begin: [2, 0], size: [3, 4] }), /Slice/);
  x.dispose();
});

test('Concat: 1-4 inputs along every axis, empty inputs, float32 and int32, bit-identical', { skip }, () =>
  noLeaks(() => {
    for (const shape of [[3], [2, 3], [2, 3, 4], [2, 1, 3, 5]]) {
      for (let axis = -1; axis < shape.length; axis++) {
        const ax = axis < 0 ? shape.length - 1 : axis;
        for (const n of [1, 2, 4]) {
          for (const dtype of ['float32', 'int32']) {
            const xs = [...Array(n).keys()].map((i) => {
              const s = [...shape];
              s[ax] = i === 1 ? 0 : 1 + rng.int(4);
              return dtype === 'float32' ? randn(s) : randi(s);
            });
            assertSame(both('Concat', xs, { axis }), `Concat ${dtype} [${xs.map((x) => `[${x.shape}]`)}] axis ${axis}`);
            tf.dispose(xs);
          }
        }
      }
    }
    const big = [randn([8, 4, 100, 32]), randn([8, 4, 1, 32])];
    assertSame(both('Concat', big, { axis: 2 }), 'Concat KV-cache shape');
    tf.dispose(big);
  }));

test('Tile: reps 0/1/odd over ranks 1-4, float32 and int32, bit-identical', { skip }, () =>
  noLeaks(() => {
    for (const [shape, reps] of [[[3], [4]], [[2, 3], [1, 1]], [[2, 3], [3, 2]], [[2, 3], [0, 2]], [[1, 5, 1], [4, 1, 3]], [[2, 1, 3, 2], [1, 3, 2, 1]], [[128, 64], [8, 1]]]) {
      for (const x of [randn(shape), randi(shape)]) {
        assertSame(both('Tile', { x }, { reps }), `Tile ${x.dtype} [${shape}] reps [${reps}]`);
        x.dispose();
      }
    }
  }));

test('PadV2: zero and non-zero paddings over ranks 1-4, empty inputs, a constant value, bit-identical', { skip }, () =>
  noLeaks(() => {
    const cases: [number[], [number, number][]][] = [
      [[5], [[2, 3]]], [[3, 4], [[0, 0], [1, 0]]], [[3, 4], [[1, 2], [0, 3]]], [[128, 128], [[0, 0], [1, 0]]],
      [[2, 3, 4], [[1, 1], [0, 2], [3, 0]]], [[2, 1, 3, 2], [[0, 1], [2, 0], [0, 0], [1, 1]]], [[0, 3], [[1, 1], [1, 0]]], [[2, 0], [[0, 0], [2, 2]]],
    ];
    for (const [shape, paddings] of cases) {
      const x = randn(shape);
      for (const constantValue of [0, -1.5]) assertSame(both('PadV2', { x }, { paddings, constantValue }), `PadV2 [${shape}] ${JSON.stringify(paddings)} ${constantValue}`);
      x.dispose();
    }
  }));

test('GatherV2: axes 0/1/last, batchDims 0/1, repeated indices, float32 and int32, bit-identical', { skip }, () =>
  noLeaks(() => {
    const cases: [number[], number[], number, number][] = [
      [[10, 4], [7], 0, 0], [[10, 4], [3, 2], 0, 0], [[5, 6, 3], [4], 1, 0], [[5, 6, 3], [8], 2, 0], [[5, 6, 3], [5, 2], 1, 1],
      [[4096, 128], [1024], 0, 0], [[3, 4], [0], 0, 0], [[1, 1], [5], 1, 0],
    ];
    for (const [xs, is, axis, batchDims] of cases) {
      const dim = xs[axis];
      const indices = tf.tensor(Int32Array.from({ length: size(is) }, () => rng.int(dim)), is, 'int32');
      for (const x of [randn(xs), randi(xs)]) {
        assertSame(both('GatherV2', { x, indices }, { axis, batchDims }), `GatherV2 ${x.dtype} [${xs}] idx [${is}] axis ${axis} batchDims ${batchDims}`);
        x.dispose();
      }
      indices.dispose();
    }
  }));

test('GatherV2 with an out-of-range index is a NativeKernelError naming the index and shapes', { skip }, async () => {
  await ready;
  const x = tf.zeros([5, 2]);
  const indices = tf.tensor1d([0, 5], 'int32');
  const before = tf.memory().numTensors;
  assert.throws(() => tf.engine().runKernel('GatherV2', { x, indices }, { axis: 0, batchDims: 0 }), (e: Error) => e instanceof NativeKernelError && /GatherV2/.test(e.message) && /index 5/.test(e.message) && /\[5,2\]/.test(e.message));
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, indices]);
});

test('ScatterNd: duplicate indices add in order, rank-1 and rank-2 indices, bit-identical', { skip }, () =>
  noLeaks(() => {
    const cases: [number[], number, number[]][] = [[[12], 40, []], [[6, 5], 9, [5]], [[4, 3, 2], 30, []], [[4, 3, 2], 7, [2]], [[1024 * 64], 1024, []], [[1024, 128], 2000, [128]]];
    for (const [shape, nUpd, tail] of cases) {
      const rank = shape.length - tail.length;
      const idx = Int32Array.from({ length: nUpd * rank }, (_, i) => rng.int(shape[i % rank]));
      const indices = tf.tensor(idx, [nUpd, rank], 'int32');
      const updates = randn([nUpd, ...tail]);
      assertSame(both('ScatterNd', { indices, updates }, { shape }), `ScatterNd [${shape}] ${nUpd} updates`);
      tf.dispose([indices, updates]);
    }
  }));

test('ScatterNd with an index outside the shape is a NativeKernelError', { skip }, async () => {
  await ready;
  const indices = tf.tensor2d([[1], [9]], [2, 1], 'int32');
  const updates = tf.ones([2]);
  assert.throws(() => tf.engine().runKernel('ScatterNd', { indices, updates }, { shape: [4] }), (e: Error) => e instanceof NativeKernelError && /ScatterNd/.test(e.message) && /\[9\]/.test(e.message));
  tf.dispose([indices, updates]);
});

test('Cast int32/bool -> float32 and float32 -> int32/bool like the cpu backend (truncation, wrap, NaN)', { skip }, () =>
  noLeaks(() => {
    const f = tf.tensor1d([0, -0, 1.5, -1.5, 2.9999, -7.99, 1e9, -2147483648, 2147483520, 3e9, -3e9, 1e20, NaN, Infinity, -Infinity, 123456789]);
    for (const dtype of ['int32', 'bool']) assertSame(both('Cast', { x: f }, { dtype }), `Cast float32 -> ${dtype}`);
    // Within 2^24 every int32 is a float32 and the results are identical. Beyond it the cpu backend's
    // cast is an identity that leaves unrepresentable integers in a 'float32' tensor; this one rounds
    // to the nearest float32, as Math.fround (and every other backend) does.
    const i = randi([1001], 1 << 24);
    assertSame(both('Cast', { x: i }, { dtype: 'float32' }), 'Cast int32 -> float32');
    const big = randi([1001], 1 << 30);
    const fb = tf.cast(big, 'float32');
    assert.deepEqual([...fb.dataSync()], [...big.dataSync()].map(Math.fround));
    tf.dispose([big, fb]);
    const b = tf.tensor1d([true, false, true], 'bool');
    assertSame(both('Cast', { x: b }, { dtype: 'float32' }), 'Cast bool -> float32');
    tf.dispose([f, i, b]);
  }));

test('ops composed of these kernels keep working with gradients (tf.grad of a broadcast expression)', { skip }, () =>
  noLeaks(() => {
    const x = randn([4, 6]), w = randn([6]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.exp(tf.sub(a, tf.max(a, -1, true))), tf.tanh(b)));
    const [ga, gb] = tf.grads(f)([x, w]);
    // d/db = sum_rows(e) * (1 - tanh^2(b)); d/da by the chain rule through max; compare with float64 finite differences.
    const xv = x.dataSync(), wv = w.dataSync();
    const f64 = (xa: Float64Array, wb: Float64Array) => {
      let s = 0;
      for (let r = 0; r < 4; r++) {
        let m = -Infinity;
        for (let j = 0; j < 6; j++) m = Math.max(m, xa[r * 6 + j]);
        for (let j = 0; j < 6; j++) s += Math.exp(xa[r * 6 + j] - m) * Math.tanh(wb[j]);
      }
      return s;
    };
    const h = 1e-6;
    const gbv = gb.dataSync();
    for (let j = 0; j < 6; j++) {
      const wp = Float64Array.from(wv), wm = Float64Array.from(wv);
      wp[j] += h; wm[j] -= h;
      const fd = (f64(Float64Array.from(xv), wp) - f64(Float64Array.from(xv), wm)) / (2 * h);
      assert.ok(Math.abs(gbv[j] - fd) <= 1e-4 * Math.max(1, Math.abs(fd)), `d/dw[${j}] ${gbv[j]} vs ${fd}`);
    }
    tf.dispose([x, w, ga, gb]);
  }));
