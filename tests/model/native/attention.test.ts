/**
 * Fused attention (RtAttention / RtAttentionGrad) and RoPE (RtRope) on the native backend, checked against
 * an independent float64 loop of the published formulas (eager attention: softmax(q k^T / sqrt(hd) + mask) v,
 * its analytic backward, HF rotate-half RoPE), against float64 finite differences, and the whole attention
 * layer against the composed path on the cpu backend. Skipped where the addon is not built, unless
 * RINGTUNE_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/model/backend.ts';
import { loadAddon } from '../../../src/model/native/addon.ts';
import { NativeKernelError } from '../../../src/model/native/backend.ts';
import { runKernel } from '../../../src/model/native/kernels.ts';
import { attention, keyMaskFrom, type AttentionWeights } from '../../../src/model/layers/attention.ts';
import { ropeTables } from '../../../src/model/layers/rope.ts';
import { Rng } from '../../../src/util/rng.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;
const ready = addon ? initBackend('native', () => {}) : Promise.resolve();

interface Case { B: number; T: number; H: number; Hkv: number; hd: number; causal: boolean; mask: boolean; offset?: number }

// ---------------------------------------------------------------------------------------------
// float64 reference (no tfjs)
// ---------------------------------------------------------------------------------------------

function randn(n: number, rng: Rng, std = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = std * rng.normal();
  return a;
}

/** Keys of batch b: padded (-1e9) with probability 0.3, key 0 always attended. */
function randomMask(B: number, T: number, rng: Rng): Float64Array {
  const m = new Float64Array(B * T);
  for (let b = 0; b < B; b++) for (let s = 1; s < T; s++) m[b * T + s] = rng.next() < 0.3 ? -1e9 : 0;
  return m;
}

interface Ref { ctx: Float64Array; P: Float64Array }

function attention64(q: Float64Array, k: Float64Array, v: Float64Array, mask: Float64Array | undefined, c: Case): Ref {
  const { B, T, H, Hkv, hd, causal } = c;
  const off = c.offset ?? 0;
  const rep = H / Hkv;
  const scale = 1 / Math.sqrt(hd);
  const ctx = new Float64Array(B * T * H * hd);
  const P = new Float64Array(B * H * T * T);
  const row = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[(b * T + i) * H * hd + h * hd + d] * k[(b * T + j) * Hkv * hd + g * hd + d];
          s = s * scale + (mask ? mask[b * T + j] : 0) + (causal && j > off + i ? -1e9 : 0);
          row[j] = s;
          max = Math.max(max, s);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += (row[j] = Math.exp(row[j] - max));
        for (let j = 0; j < T; j++) {
          const p = row[j] / sum;
          P[((b * H + h) * T + i) * T + j] = p;
          for (let d = 0; d < hd; d++) ctx[(b * T + i) * H * hd + h * hd + d] += p * v[(b * T + j) * Hkv * hd + g * hd + d];
        }
      }
    }
  }
  return { ctx, P };
}

/** Analytic backward: dv = P^T dO, dP = dO v^T, dS = P (dP - rowsum(P dP)), dq = s dS k, dk = s dS^T q. */
function attentionGrad64(q: Float64Array, k: Float64Array, v: Float64Array, P: Float64Array, dO: Float64Array, c: Case) {
  const { B, T, H, Hkv, hd } = c;
  const rep = H / Hkv;
  const scale = 1 / Math.sqrt(hd);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const dP = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * H * hd + h * hd;
        let dot = 0;
        for (let j = 0; j < T; j++) {
          const kj = (b * T + j) * Hkv * hd + g * hd;
          const p = P[((b * H + h) * T + i) * T + j];
          let s = 0;
          for (let d = 0; d < hd; d++) {
            s += dO[qi + d] * v[kj + d];
            dv[kj + d] += p * dO[qi + d];
          }
          dP[j] = s;
          dot += p * s;
        }
        for (let j = 0; j < T; j++) {
          const kj = (b * T + j) * Hkv * hd + g * hd;
          const dS = P[((b * H + h) * T + i) * T + j] * (dP[j] - dot) * scale;
          for (let d = 0; d < hd; d++) {
            dq[qi + d] += dS * k[kj + d];
            dk[kj + d] += dS * q[qi + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** HF apply_rotary_pos_emb on rows ordered (b, t, head); transpose = the backward. */
function rope64(x: Float64Array, hd: number, T: number, heads: number, offset: number, theta: number, transpose = false): Float64Array {
  const half = hd / 2;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / hd; r++) {
    const pos = offset + (Math.floor(r / heads) % T);
    for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / hd);
      const c = Math.cos(a), s = Math.sin(a);
      const x1 = x[r * hd + i], x2 = x[r * hd + i + half];
      // forward: [x1 c - x2 s, x2 c + x1 s]; transpose: [x1 c + x2 s, x2 c - x1 s]
      y[r * hd + i] = transpose ? x1 * c + x2 * s : x1 * c - x2 * s;
      y[r * hd + i + half] = transpose ? x2 * c - x1 * s : x2 * c + x1 * s;
    }
  }
  return y;
}

/** max |a - b| / max(floor, max |b|): relative to the tensor's scale. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(a.length, b.length);
  let diff = 0, scale = floor;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

const f32 = (a: Float64Array) => Float32Array.from(a);
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const desc = (c: Case) => `B${c.B} T${c.T} H${c.H}/${c.Hkv} hd${c.hd}${c.causal ? ' causal' : ''}${c.mask ? ' mask' : ''}${c.offset ? ` off${c.offset}` : ''}`;

function inputs(c: Case, seed: number) {
  const rng = new Rng(seed);
  // The input to the float64 reference is the float32-rounded value the kernel sees.
  const q = f64(f32(randn(c.B * c.T * c.H * c.hd, rng)));
  const k = f64(f32(randn(c.B * c.T * c.Hkv * c.hd, rng)));
  const v = f64(f32(randn(c.B * c.T * c.Hkv * c.hd, rng)));
  const mask = c.mask ? randomMask(c.B, c.T, rng) : undefined;
  const dO = f64(f32(randn(c.B * c.T * c.H * c.hd, rng)));
  return { q, k, v, mask, dO };
}

function attrsOf(c: Case): tf.NamedAttrMap {
  return { B: c.B, T: c.T, H: c.H, Hkv: c.Hkv, hd: c.hd, causal: c.causal, scale: 1 / Math.sqrt(c.hd), offset: c.offset ?? 0 };
}

/** ctx, probs and d(sum(ctx * dO))/d(q, k, v) from the fused kernels. */
function fused(c: Case, x: ReturnType<typeof inputs>) {
  const q = tf.tensor2d(f32(x.q), [c.B * c.T, c.H * c.hd]);
  const k = tf.tensor2d(f32(x.k), [c.B * c.T, c.Hkv * c.hd]);
  const v = tf.tensor2d(f32(x.v), [c.B * c.T, c.Hkv * c.hd]);
  const dO = tf.tensor2d(f32(x.dO), [c.B * c.T, c.H * c.hd]);
  const keyMask = x.mask ? tf.tensor2d(f32(x.mask), [c.B, c.T]) : undefined;
  const run = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
    runKernel<tf.Tensor[]>('RtAttention', keyMask ? { q: qq, k: kk, v: vv, keyMask } : { q: qq, k: kk, v: vv }, attrsOf(c));
  const [ctx, probs] = run(q, k, v);
  const out = { ctx: ctx.dataSync(), P: probs.dataSync() };
  const grads = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(run(qq, kk, vv)[0], dO)))([q, k, v]);
  const g = { dq: grads[0].dataSync(), dk: grads[1].dataSync(), dv: grads[2].dataSync() };
  tf.dispose([q, k, v, dO, ctx, probs, ...grads, ...(keyMask ? [keyMask] : [])]);
  return { ...out, ...g };
}

const cases: Case[] = [];
for (const T of [1, 7, 33]) {
  for (const hd of [8, 16, 64]) {
    for (const [H, Hkv] of [[4, 4], [4, 2], [4, 1]]) {
      cases.push({ B: 2, T, H, Hkv, hd, causal: true, mask: false });
      cases.push({ B: 2, T, H, Hkv, hd, causal: false, mask: true });
    }
  }
}
// Across the kernel's 32-row blocks, with the causal mask and the key mask together, and a causal offset.
cases.push({ B: 2, T: 130, H: 2, Hkv: 1, hd: 16, causal: true, mask: true });
cases.push({ B: 1, T: 150, H: 3, Hkv: 3, hd: 8, causal: false, mask: false });
cases.push({ B: 2, T: 70, H: 2, Hkv: 2, hd: 8, causal: true, mask: false, offset: 3 });
cases.push({ B: 1, T: 64, H: 1, Hkv: 1, hd: 4, causal: true, mask: false });

test('float64 analytic attention backward matches float64 central differences', () => {
  const c: Case = { B: 2, T: 3, H: 2, Hkv: 1, hd: 4, causal: true, mask: true };
  const x = inputs(c, 7);
  x.mask![1] = 0; x.mask![5] = -1e9; // one padded key, one attended, whatever the draw
  const loss = (q: Float64Array, k: Float64Array, v: Float64Array) => {
    const { ctx } = attention64(q, k, v, x.mask, c);
    let s = 0;
    for (let i = 0; i < ctx.length; i++) s += ctx[i] * x.dO[i];
    return s;
  };
  const { P } = attention64(x.q, x.k, x.v, x.mask, c);
  const g = attentionGrad64(x.q, x.k, x.v, P, x.dO, c);
  const eps = 1e-6;
  for (const [name, arr, grad] of [['q', x.q, g.dq], ['k', x.k, g.dk], ['v', x.v, g.dv]] as const) {
    const fd = new Float64Array(arr.length);
    for (let i = 0; i < arr.length; i++) {
      const keep = arr[i];
      arr[i] = keep + eps; const up = loss(x.q, x.k, x.v);
      arr[i] = keep - eps; const down = loss(x.q, x.k, x.v);
      arr[i] = keep;
      fd[i] = (up - down) / (2 * eps);
    }
    assert.ok(relErr(grad, fd) < 1e-7, `d${name}: ${relErr(grad, fd)}`);
  }
});

test('RtAttention and its gradient match the float64 loop (causal, key mask, GQA, odd sizes)', { skip }, async (t) => {
  await ready;
  const before = tf.memory().numTensors;
  let worst = { fwd: 0, bwd: 0 };
  for (const [n, c] of cases.entries()) {
    const x = inputs(c, 100 + n);
    const ref = attention64(x.q, x.k, x.v, x.mask, c);
    const g = attentionGrad64(x.q, x.k, x.v, ref.P, x.dO, c);
    const got = fused(c, x);
    const e = {
      ctx: relErr(got.ctx, ref.ctx), P: relErr(got.P, ref.P),
      dq: relErr(got.dq, g.dq), dk: relErr(got.dk, g.dk), dv: relErr(got.dv, g.dv),
    };
    worst = { fwd: Math.max(worst.fwd, e.ctx, e.P), bwd: Math.max(worst.bwd, e.dq, e.dk, e.dv) };
    for (const [name, err] of Object.entries(e)) assert.ok(err < 1e-5, `${desc(c)} ${name}: relative error ${err}`);
    if (c.causal) {
      // exactly 0 above the diagonal (the composed path's exp(-1e9) is 0 in float32)
      const off = c.offset ?? 0;
      for (let i = 0; i < c.T; i++) for (let j = off + i + 1; j < c.T; j++) assert.equal(got.P[i * c.T + j], 0);
    }
  }
  t.diagnostic(`worst relative error: forward ${worst.fwd.toExponential(2)}, backward ${worst.bwd.toExponential(2)}`);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('RtAttention with B = 0 or T = 0 returns empty tensors', { skip }, async () => {
  await ready;
  for (const [B, T] of [[0, 5], [2, 0]]) {
    const [ctx, probs] = runKernel<tf.Tensor[]>('RtAttention', { q: tf.zeros([B * T, 8]), k: tf.zeros([B * T, 8]), v: tf.zeros([B * T, 8]) },
      { B, T, H: 2, Hkv: 2, hd: 4, causal: true, scale: 0.5, offset: 0 });
    assert.deepEqual(ctx.shape, [B * T, 8]);
    assert.deepEqual(probs.shape, [B, 2, T, T]);
    tf.dispose([ctx, probs]);
  }
});

test('RtAttention rejects shapes that do not fit with a NativeKernelError', { skip }, async () => {
  await ready;
  const q = tf.zeros([6, 8]), k = tf.zeros([6, 4]);
  const attrs = { B: 2, T: 3, H: 2, Hkv: 1, hd: 4, causal: true, scale: 0.5, offset: 0 };
  assert.throws(() => runKernel('RtAttention', { q, k, v: tf.zeros([6, 8]) }, attrs), NativeKernelError);
  assert.throws(() => runKernel('RtAttention', { q, k, v: k, keyMask: tf.zeros([2, 4]) }, attrs), NativeKernelError);
  assert.throws(() => runKernel('RtAttention', { q, k, v: k }, { ...attrs, Hkv: 3 }), /RtAttention/);
  const table = tf.zeros([2, 8]);
  assert.throws(() => runKernel('RtRope', { x: q, cos: table, sin: table }, { T: 3, heads: 1, offset: 0 }), NativeKernelError);
  tf.dispose([q, k, table]);
});

test('RtRope and its gradient match the float64 rotate-half formula and its transpose', { skip }, async () => {
  await ready;
  const before = tf.memory().numTensors;
  const theta = 10000;
  for (const [B, T, heads, hd, offset] of [[2, 5, 3, 8, 0], [1, 1, 1, 2, 4], [3, 7, 2, 64, 2]]) {
    const tables = ropeTables(hd, offset + T + 3, theta);
    const rng = new Rng(hd + T);
    const x = f64(f32(randn(B * T * heads * hd, rng)));
    const dy = f64(f32(randn(x.length, rng)));
    const xt = tf.tensor2d(f32(x), [B * T * heads, hd]);
    const dyt = tf.tensor2d(f32(dy), [B * T * heads, hd]);
    const run = (xx: tf.Tensor) => runKernel<tf.Tensor>('RtRope', { x: xx, cos: tables.cos, sin: tables.sin }, { T, heads, offset });
    const y = run(xt);
    const [dx] = tf.grads((xx: tf.Tensor) => tf.sum(tf.mul(run(xx), dyt)))([xt]);
    assert.ok(relErr(y.dataSync(), rope64(x, hd, T, heads, offset, theta)) < 1e-5, `rope B${B} T${T} hd${hd}`);
    assert.ok(relErr(dx.dataSync(), rope64(dy, hd, T, heads, offset, theta, true)) < 1e-5, `rope grad B${B} T${T} hd${hd}`);
    tf.dispose([xt, dyt, y, dx, tables.cos, tables.sin, tables.rotate]);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

// ---------------------------------------------------------------------------------------------
// The whole layer: fused on native vs the composed path on cpu
// ---------------------------------------------------------------------------------------------

interface LayerCase { B: number; T: number; d: number; H: number; Hkv: number; hd: number; causal: boolean; rope: boolean; mask: boolean; offset: number }

function layerRun(c: LayerCase, seed: number) {
  const rng = new Rng(seed);
  const mk = (shape: number[], std = 0.35) => tf.tensor(f32(randn(shape.reduce((a, b) => a * b, 1), rng, std)), shape);
  const h = mk([c.B * c.T, c.d], 1) as tf.Tensor2D;
  const w: AttentionWeights = {
    wq: mk([c.d, c.H * c.hd]) as tf.Tensor2D, wk: mk([c.d, c.Hkv * c.hd]) as tf.Tensor2D, wv: mk([c.d, c.Hkv * c.hd]) as tf.Tensor2D,
    wo: mk([c.H * c.hd, c.d]) as tf.Tensor2D, bq: mk([c.H * c.hd]) as tf.Tensor1D, bk: mk([c.Hkv * c.hd]) as tf.Tensor1D,
    bv: mk([c.Hkv * c.hd]) as tf.Tensor1D, bo: mk([c.d]) as tf.Tensor1D,
  };
  const am = new Float32Array(c.B * c.T).map((_, i) => (i % c.T === 0 || rng.next() < 0.7 ? 1 : 0));
  const attn = tf.tensor2d(am, [c.B, c.T]);
  const dy = mk([c.B * c.T, c.d], 1);
  const tables = c.rope ? ropeTables(c.hd, c.offset + c.T + 2, 10000) : undefined;
  const keyMask = c.mask ? keyMaskFrom(attn) : undefined;
  const shape = { B: c.B, T: c.T, nHeads: c.H, nKvHeads: c.Hkv, headDim: c.hd, causal: c.causal, offset: c.offset, rope: tables, keyMask };
  const all = [h, w.wq, w.wk, w.wv, w.wo, w.bq!, w.bk!, w.bv!, w.bo!];
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => attention(h, w, shape).out.dataSync());
  const { value, grads } = tf.tidy(() => {
    const r = tf.grads((...xs: tf.Tensor[]) => {
      const [hh, wq, wk, wv, wo, bq, bk, bv, bo] = xs;
      const o = attention(hh as tf.Tensor2D, { wq, wk, wv, wo, bq, bk, bv, bo } as AttentionWeights, shape).out;
      return tf.sum(tf.mul(o, dy));
    })(all);
    return { value: 0, grads: r.map((g) => g.dataSync()) };
  });
  const leaked = tf.memory().numTensors - before;
  tf.dispose([...all, attn, dy, ...(keyMask ? [keyMask] : []), ...(tables ? [tables.cos, tables.sin, tables.rotate] : [])]);
  return { out, grads, leaked, value };
}

const layerCases: LayerCase[] = [
  { B: 2, T: 9, d: 12, H: 4, Hkv: 2, hd: 6, causal: true, rope: true, mask: false, offset: 0 },
  { B: 2, T: 5, d: 16, H: 4, Hkv: 1, hd: 4, causal: true, rope: true, mask: false, offset: 3 },
  { B: 3, T: 7, d: 16, H: 2, Hkv: 2, hd: 8, causal: false, rope: false, mask: true, offset: 0 },
  { B: 2, T: 70, d: 16, H: 2, Hkv: 2, hd: 8, causal: true, rope: false, mask: false, offset: 0 },
];

test('attention layer: fused path on native equals the composed path on cpu (outputs and gradients)', { skip }, async () => {
  await ready;
  for (const [n, c] of layerCases.entries()) {
    tf.setBackend('native');
    const fusedRun = layerRun(c, 500 + n);
    tf.setBackend('cpu');
    const composedRun = layerRun(c, 500 + n);
    tf.setBackend('native');
    const name = `B${c.B} T${c.T} H${c.H}/${c.Hkv} hd${c.hd}${c.causal ? ' causal' : ''}${c.rope ? ' rope' : ''}${c.mask ? ' mask' : ''}`;
    assert.equal(fusedRun.leaked, 0, `${name}: tensor leak on native`);
    assert.ok(relErr(fusedRun.out, composedRun.out) < 2e-5, `${name} out: ${relErr(fusedRun.out, composedRun.out)}`);
    for (const [i, g] of fusedRun.grads.entries()) {
      // Floor 1: the key bias gradient is 0 up to rounding (softmax is shift invariant along a row).
      assert.ok(relErr(g, composedRun.grads[i], 1) < 2e-5, `${name} grad ${i}: ${relErr(g, composedRun.grads[i], 1)}`);
    }
  }
});

test('the fused layer builds its KV cache only when read, in the (B, Hkv, T, hd) layout', { skip }, async () => {
  await ready;
  const c = { B: 2, T: 5, d: 8, H: 2, Hkv: 1, hd: 4 };
  const rng = new Rng(3);
  const mk = (shape: [number, number]) => tf.tensor(f32(randn(shape.reduce((a, b) => a * b, 1), rng, 0.5)), shape) as tf.Tensor2D;
  const h = mk([c.B * c.T, c.d]);
  const w = { wq: mk([c.d, c.H * c.hd]), wk: mk([c.d, c.Hkv * c.hd]), wv: mk([c.d, c.Hkv * c.hd]), wo: mk([c.H * c.hd, c.d]) };
  const tables = ropeTables(c.hd, 16, 10000);
  const shape = { B: c.B, T: c.T, nHeads: c.H, nKvHeads: c.Hkv, headDim: c.hd, causal: true, offset: 0, rope: tables };
  tf.tidy(() => {
    const before = tf.memory().numTensors;
    const r = attention(h, w, shape);
    const unread = tf.memory().numTensors;
    const k = r.cache.k;
    const read = tf.memory().numTensors;
    assert.ok(read > unread, 'made on first read');
    assert.equal(r.cache.k, k, 'the same tensor on the next read');
    assert.equal(tf.memory().numTensors, read);
    assert.deepEqual(k.shape, [c.B, c.Hkv, c.T, c.hd]);
    // k rows are rope(h wk) split by heads: compare with the composed layout
    const want = tf.transpose(tf.reshape(tf.reshape(runKernel<tf.Tensor>('RtRope', { x: tf.reshape(tf.matMul(h, w.wk), [c.B * c.T * c.Hkv, c.hd]), cos: tables.cos, sin: tables.sin }, { T: c.T, heads: c.Hkv, offset: 0 }), [c.B * c.T, c.Hkv * c.hd]), [c.B, c.T, c.Hkv, c.hd]), [0, 2, 1, 3]);
    assert.ok(relErr(k.dataSync(), want.dataSync()) < 1e-6);
    assert.deepEqual(r.cache.v.shape, [c.B, c.Hkv, c.T, c.hd]);
    assert.ok(before < unread);
  });
  tf.dispose([h, ...Object.values(w), tables.cos, tables.sin, tables.rotate]);
});
