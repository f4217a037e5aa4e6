/**
 * The native AdamW and global-norm clip (native/src/optim.cc) are bit-identical to the JavaScript loops
 * (AdamW.updateJs, sumSquaresJs and the scale loop), at any thread count, so replicas with and without
 * the addon agree. The JavaScript loops themselves are checked against float64 formulas in adamw.test.ts
 * and below. Skipped where the addon is not built, unless RINGTUNE_REQUIRE_NATIVE=1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW } from '../../src/optim/adamw.ts';
import { clipGlobalNorm, sumSquaresJs, SUM_SQUARES_CHUNK } from '../../src/optim/clip.ts';
import { loadAddon } from '../../src/model/native/addon.ts';
import { optimAddon } from '../../src/model/native/kernels/optim.ts';
import { Rng } from '../../src/util/rng.ts';

const { addon, why } = loadAddon();
if (!addon && process.env.RINGTUNE_REQUIRE_NATIVE === '1') throw new Error(`native engine required but not available: ${why}`);
const skip = addon ? false : `native engine not built: ${why}`;

function firstDiff(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Gradients over many magnitudes, with exact zeros, as a subarray of a larger buffer (as flat-params.ts). */
function randomGrads(n: number, rng: Rng, step: number): Float32Array {
  const buf = new Float32Array(n + 5);
  const g = buf.subarray(3, 3 + n);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    g[i] = r < 0.02 ? 0 : rng.normal() * 10 ** (rng.int(12) - 8) * (step + 1);
  }
  return g;
}

test('native AdamW is bit-identical to the JavaScript loop: 1e6 params, 5 steps, decay mask, 1 and 2 threads', { skip }, () => {
  assert.ok(optimAddon());
  const n = 1_000_003;
  const rng = new Rng(42);
  const theta0 = Float32Array.from({ length: n }, () => rng.normal() * 0.5);
  const decay = Uint8Array.from({ length: n }, () => (rng.next() < 0.7 ? 1 : 0));
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const grads = [0, 1, 2, 3, 4].map((s) => randomGrads(n, rng, s));
  const lrs = [3e-4, 1e-3, 7e-4, 5e-4, 1e-4];
  for (const threads of [1, 2]) {
    addon!.setThreads(threads);
    const pJs = Float32Array.from(theta0), pNat = Float32Array.from(theta0);
    const js = new AdamW(n, cfg, decay), nat = new AdamW(n, cfg, decay);
    for (let s = 0; s < 5; s++) {
      js.updateJs(pJs, grads[s], lrs[s]);
      nat.update(pNat, grads[s], lrs[s]);
      assert.equal(firstDiff(pJs, pNat), -1, `threads ${threads} step ${s + 1}: params differ`);
      assert.equal(firstDiff(js.m, nat.m), -1, `threads ${threads} step ${s + 1}: m differs`);
      assert.equal(firstDiff(js.v, nat.v), -1, `threads ${threads} step ${s + 1}: v differs`);
    }
    assert.equal(nat.step, 5);
    assert.ok(firstDiff(pNat, theta0) >= 0, 'parameters moved');
  }
  addon!.setThreads(1);
});

test('native AdamW rejects buffers of the wrong length', { skip }, () => {
  const opt = new AdamW(4, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, new Uint8Array(4));
  assert.throws(() => opt.update(new Float32Array(4), new Float32Array(3), 1e-3), RangeError);
  assert.equal(opt.step, 0);
});

test('sum of squares: native equals sumSquaresJs bit for bit, and both equal a float64 sum to rounding', { skip }, () => {
  const rng = new Rng(7);
  const C = SUM_SQUARES_CHUNK;
  for (const n of [0, 1, 2, 3, 4, 5, C - 1, C, C + 1, C + 3, 3 * C + 2, 1_000_003]) {
    const g = randomGrads(n, rng, 0);
    let plain = 0;
    for (let i = 0; i < n; i++) plain += g[i] * g[i];
    const js = sumSquaresJs(g);
    for (const threads of [1, 2]) {
      addon!.setThreads(threads);
      assert.ok(Object.is(optimAddon()!.sumSquares(g), js), `n ${n} threads ${threads}: ${optimAddon()!.sumSquares(g)} vs ${js}`);
    }
    assert.ok(Math.abs(js - plain) <= 1e-12 * plain, `n ${n}: ${js} vs ${plain}`);
  }
  addon!.setThreads(1);
});

test('clipGlobalNorm: native and JavaScript paths give the same norm and the same clipped bits', { skip }, () => {
  const rng = new Rng(9);
  for (const n of [1, 7, 4097, 300_001]) {
    const g = randomGrads(n, rng, 2);
    for (const maxNorm of [0, 1e-3, 1e9]) {
      const a = Float32Array.from(g), b = Float32Array.from(g);
      const na = clipGlobalNorm(a, maxNorm, true);
      const nb = clipGlobalNorm(b, maxNorm, false);
      assert.ok(Object.is(na, nb), `n ${n} maxNorm ${maxNorm}: norm ${na} vs ${nb}`);
      assert.equal(firstDiff(a, b), -1, `n ${n} maxNorm ${maxNorm}: clipped values differ`);
      if (maxNorm > 0 && na > maxNorm) {
        let sq = 0;
        for (let i = 0; i < n; i++) sq += a[i] * a[i];
        const want = (maxNorm * na) / (na + 1e-6); // torch's scale maxNorm / (norm + 1e-6)
        assert.ok(Math.abs(Math.sqrt(sq) - want) <= 1e-5 * want, `clipped norm ${Math.sqrt(sq)} vs ${want}`);
      }
    }
  }
});
