/**
 * The ring's native kernels (native/src/collective.cc via src/collective/kernels.ts) and the JavaScript
 * loops of codecs.ts against independent float64 references, and against each other bit for bit:
 *   fp32 add: the exact sum rounded once to float32. In float64, a + b of two float32 values rounded to
 *             float32 is that (double rounding is harmless for + since 53 >= 2*24 + 2, Figueroa 1995).
 *   bf16:     x rounded to 8 significant bits, ties to even, by scaling with its ulp in float64 (no bit
 *             tricks: a different method from both implementations); past the largest bf16 -> Inf.
 * Inputs: every float32 class (zeros of both signs, subnormals, normals near 1 and near overflow, Inf,
 * NaN including the NaNs that a careless round-up turns into Inf), exact ties, random bit patterns,
 * lengths off the vector width and views at odd offsets.
 */
import { test } from 'node:test';
import { bothPaths } from './helpers.ts';
import assert from 'node:assert/strict';
import { bf16, fp32 } from '../../src/collective/codecs.ts';
import { NATIVE_MIN_ELEMENTS, ringKernels, ringKernelsStatus } from '../../src/collective/kernels.ts';

const native = ringKernels();
const skipNative = native ? false : `native ring kernels unavailable: ${ringKernelsStatus()}`;

const MAX_BF16 = (2 - 2 ** -7) * 2 ** 127;

/** x (a float32 value) rounded to bf16, ties to even, computed with float64 arithmetic only. */
function bf16Ref(x: number): number {
  if (Number.isNaN(x) || x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -126) - 7); // bf16 subnormals: fixed spacing 2^-133, like float32's range
  const q = a / ulp; // exact: a power-of-two scaling
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const y = r * ulp;
  return Math.sign(x) * (y > MAX_BF16 ? Infinity : y);
}

/** float32 values covering every class, then random bit patterns; length n (not a multiple of 8). */
function inputs(n: number, seed: number): Float32Array {
  const special = [0, -0, 2 ** -149, -(2 ** -149), 3 * 2 ** -149, 2 ** -126, 2 ** -126 - 2 ** -149, 1, -1,
    1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1.5 + 2 ** -8, 3.4028234663852886e38, -3.4028234663852886e38,
    MAX_BF16, 2 ** 127 * (2 - 2 ** -8), Infinity, -Infinity, NaN, 65280.5, 1e-40, -1e-45, 7.006e-39];
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    if (i < special.length) out[i] = special[i]!;
    else {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      bits[i] = s;
    }
  }
  // NaNs whose payload sits only in the low 16 bits: rounding them up would give Inf.
  bits[special.length] = 0x7f800001;
  bits[special.length + 1] = 0xffff8000;
  // Exact bf16 ties with odd and even kept parts, at random exponents.
  for (let i = special.length + 2; i < Math.min(n, special.length + 40); i++) bits[i] = (bits[i]! & 0xffff0000) | 0x8000;
  return out;
}

const same = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : Object.is(a, b));

/** Runs f once on the JavaScript path and once on the native path; returns both results. */
// The two reference tests run without the addon too (both runs then take the JS path).
test('fp32 accumulate equals the float64 reference and the JS path bit for bit', () => {
  const n = NATIVE_MIN_ELEMENTS * 8 + 5;
  const a = inputs(n, 1);
  const b = inputs(n, 2).reverse();
  b[0] = -0; // -0 + -0 = -0; 0 + -0 = +0 (a[0] = 0 after the reverse of b)
  b[n - 1] = -Infinity; // -Infinity + ... , and Inf + -Inf = NaN somewhere in the specials
  const wire = new Uint8Array(4 + 4 * n); // payload at byte 4 of the slot, as the transports place it
  const { js, nat } = bothPaths(() => {
    fp32.encode(b, wire.subarray(4));
    const acc = a.slice();
    fp32.accumulate(wire.subarray(4), acc);
    return acc;
  });
  let nonFinite = 0;
  for (let i = 0; i < n; i++) {
    const want = Math.fround(a[i]! + b[i]!);
    assert.ok(same(nat[i]!, want), `native: ${a[i]} + ${b[i]} = ${nat[i]}, want ${want} (i = ${i})`);
    assert.ok(same(js[i]!, want), `JS: ${a[i]} + ${b[i]} = ${js[i]}, want ${want} (i = ${i})`);
    if (!Number.isFinite(want)) nonFinite++;
  }
  assert.ok(nonFinite > 2, 'the inputs reach Inf and NaN');
  assert.ok(Object.is(nat[0], 0) && Object.is(nat[n - 1], -Infinity));
});

test('bf16 encode/decode/roundTrip/accumulate equal the float64 reference (ties to even, subnormals, NaN, Inf)', () => {
  const n = NATIVE_MIN_ELEMENTS * 4 + 3;
  const x = inputs(n, 7);
  const base = inputs(n, 9);
  const res = bothPaths(() => {
    const wire = new Uint8Array(2 * n);
    assert.equal(bf16.encode(x, wire), 2 * n);
    const decoded = new Float32Array(n);
    bf16.decode(wire, decoded);
    const rt = x.slice();
    bf16.roundTrip(rt);
    const acc = base.slice();
    bf16.accumulate(wire, acc);
    return { wire, decoded, rt, acc };
  });
  let ties = 0;
  let subnormals = 0;
  for (let i = 0; i < n; i++) {
    const want = bf16Ref(x[i]!);
    for (const [path, r] of [['native', res.nat], ['JS', res.js]] as const) {
      assert.ok(same(r.decoded[i]!, want), `${path} bf16(${x[i]}) = ${r.decoded[i]}, want ${want} (i = ${i})`);
      assert.ok(same(r.rt[i]!, want), `${path} roundTrip(${x[i]}) = ${r.rt[i]}, want ${want}`);
      assert.ok(same(r.acc[i]!, Math.fround(base[i]! + want)), `${path} accumulate at ${i}`);
    }
    if (Number.isNaN(x[i]!)) assert.ok(Number.isNaN(res.nat.decoded[i]!), 'NaN stays NaN, never Inf');
    if (x[i] !== 0 && Math.abs(x[i]!) < 2 ** -126) subnormals++;
    if (Number.isFinite(x[i]!) && x[i] !== 0 && Math.abs(x[i]! / (2 ** (Math.floor(Math.log2(Math.abs(x[i]!))) - 7))) % 1 === 0.5) ties++;
  }
  assert.ok(ties >= 20 && subnormals >= 3, `the inputs hold ties (${ties}) and subnormals (${subnormals})`);
  // The wire bytes themselves are identical, NaNs included (both paths quiet a NaN the same way).
  assert.deepEqual(res.nat.wire, res.js.wire);
  // Hand-worked: 1 + 2^-8 is a tie between 1 (even) and 1 + 2^-7 -> 1; 1 + 3*2^-8 -> 1 + 2^-6.
  assert.equal(bf16Ref(1 + 2 ** -8), 1);
  assert.equal(bf16Ref(1 + 3 * 2 ** -8), 1 + 2 ** -6);
});

test('native kernels check their arguments and name themselves in the error', { skip: skipNative }, () => {
  const k = native!;
  assert.throws(() => k.ringF32Accumulate(new Uint8Array(8), new Float32Array(4), 4), /ringF32Accumulate: argument 0 holds 8 bytes, 16 needed/);
  assert.throws(() => k.ringBf16Encode(new Float32Array(4), new Uint8Array(6), 4), /ringBf16Encode: argument 1 holds 6 bytes, 8 needed/);
  assert.throws(() => k.ringBf16RoundTrip(new Float32Array(4), -1), /ringBf16RoundTrip: argument 1 must be a non-negative element count/);
  assert.throws(() => k.ringBf16Decode({} as Uint8Array, new Float32Array(1), 1), /ringBf16Decode: argument 0 must be a typed array/);
});

test('native kernels work on views of a SharedArrayBuffer (a ring run in a worker thread)', { skip: skipNative }, () => {
  const n = 4099;
  const shared = new Float32Array(new SharedArrayBuffer(4 * (n + 1)), 4, n).fill(1.5);
  const src = Float32Array.from({ length: n }, (_, i) => i);
  native!.ringF32Accumulate(src, shared, n);
  for (let i = 0; i < n; i += 97) assert.equal(shared[i], i + 1.5);
});
