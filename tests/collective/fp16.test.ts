/**
 * The fp16 codec (src/collective/fp16.ts) against an independent float64 reference of IEEE binary16
 * rounding, on both paths (native kernels and JavaScript loops), and the two paths against each other
 * bit for bit. The reference uses no bit tricks: the scale exponent from log2 of the max rounded to
 * 11 significant bits by ulp scaling; each value x * 2^-e rounded to a multiple of its binary16 ulp
 * (2^(max(E, -14) - 10): subnormals below 2^-14) with ties to even; past 65504 -> Inf.
 * Hand-worked cases: ties both ways, subnormal ties, the largest finite binary16, NaN / Inf / -0,
 * all-zero messages, messages whose max rounds up a binade, and scales outside float32's range.
 */
import { test } from 'node:test';
import { bothPaths } from './helpers.ts';
import assert from 'node:assert/strict';
import { fp16, codecByWireId, codecs } from '../../src/collective/codecs.ts';
import { addFp16ResidualSink, fp16Exponent } from '../../src/collective/fp16.ts';
import { NATIVE_MIN_ELEMENTS, ringF16Kernels, ringKernelsStatus } from '../../src/collective/kernels.ts';
import { f32BitsToF16Bits } from '../../src/model/half.ts';

const nativeK = ringF16Kernels();
const skipNative = nativeK ? false : `native fp16 kernels unavailable: ${ringKernelsStatus()}`;

/** floor(log2(a)) for a > 0, exactly (Math.log2 may be off by one near powers of two). */
function ilog2(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return e;
}

/** a >= 0 rounded to a multiple of `ulp`, ties to even (float64, exact for these power-of-two ulps). */
function roundTo(a: number, ulp: number): number {
  const q = a / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  return r * ulp;
}

/** The reference message exponent: E of max finite |x| rounded to 11 significant bits (E >= -126), minus 15. */
function refExponent(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) if (Number.isFinite(xs[i]!)) m = Math.max(m, Math.abs(xs[i]!));
  if (m === 0) return 0;
  const m11 = roundTo(m, 2 ** (ilog2(m) - 10));
  return Math.max(ilog2(m11), -126) - 15;
}

/** x * 2^-e as binary16, ties to even, then back times 2^e rounded to float32: what every receiver holds. */
function refValue(x: number, e: number): number {
  if (Number.isNaN(x) || x === 0 || !Number.isFinite(x)) return x;
  const s = Math.abs(x) * 2 ** -e; // exact
  const h = roundTo(s, 2 ** (Math.max(ilog2(s), -14) - 10));
  return Math.sign(x) * Math.fround(h > 65504 ? Infinity : h * 2 ** e);
}

const same = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : Object.is(a, b));

interface Coded { wire: Uint8Array; decoded: Float32Array; rt: Float32Array; acc: Float32Array; residual: Float32Array }

/** encode / decode / roundTrip / accumulate of one message, the residual of an encode tracked. */
function code(x: Float32Array, base: Float32Array): Coded {
  const wire = new Uint8Array(4 + 2 * x.length);
  const residual = new Float32Array(x.length);
  const remove = addFp16ResidualSink({ buffer: x, residual });
  try {
    assert.equal(fp16.encode(x, wire), wire.length);
  } finally {
    remove();
  }
  const decoded = new Float32Array(x.length);
  fp16.decode(wire, decoded);
  const rt = x.slice();
  fp16.roundTrip(rt);
  const acc = base.slice();
  fp16.accumulate(wire, acc);
  return { wire, decoded, rt, acc, residual };
}

/** Runs f on the JavaScript path, then on the native path. */
/** Checks one message on both paths against the reference; returns the exponent used. */
function checkMessage(values: number[] | Float32Array, label: string, padTo = NATIVE_MIN_ELEMENTS): number {
  // Padded with zeros to the native size (zeros do not change the max); the real values lead.
  const x = new Float32Array(Math.max(values.length, padTo));
  x.set(values);
  const base = Float32Array.from(x, (_, i) => ((i % 7) - 3) * 0.375);
  const e = refExponent(x);
  const { js, nat } = bothPaths(() => code(x, base));
  for (const [path, r] of [['native', nat], ['JS', js]] as const) {
    assert.equal(new Int32Array(r.wire.buffer, 0, 1)[0], e, `${label} ${path}: exponent`);
    for (let i = 0; i < x.length; i++) {
      const want = refValue(x[i]!, e);
      assert.ok(same(r.decoded[i]!, want), `${label} ${path}: fp16(${x[i]}) at e=${e} = ${r.decoded[i]}, want ${want} (i = ${i})`);
      assert.ok(same(r.rt[i]!, want), `${label} ${path}: roundTrip(${x[i]}) = ${r.rt[i]}, want ${want}`);
      assert.ok(same(r.acc[i]!, Math.fround(base[i]! + want)), `${label} ${path}: accumulate at ${i}`);
      if (Number.isFinite(want)) assert.equal(r.residual[i], x[i]! - want, `${label} ${path}: residual at ${i}`);
    }
  }
  assert.deepEqual(nat.wire, js.wire, `${label}: native and JS wire bytes`);
  return e;
}

test('fp16 reference: hand-worked binary16 roundings (ties to even, subnormals, the largest finite)', () => {
  // e = 0 (a message whose max is in [2^15, 2^16)): values are binary16 as they are.
  assert.equal(refValue(1 + 2 ** -11, 0), 1); // tie between 1 (even) and 1 + 2^-10 -> 1
  assert.equal(refValue(1 + 3 * 2 ** -11, 0), 1 + 2 ** -9); // tie, odd below -> up
  assert.equal(refValue(65504, 0), 65504);
  assert.equal(refValue(65519, 0), 65504); // below the 65520 tie
  assert.equal(refValue(2 ** -25, 0), 0); // tie between 0 and the smallest subnormal -> 0
  assert.equal(refValue(3 * 2 ** -25, 0), 2 ** -23); // tie between 1 and 2 x 2^-24 -> 2 (even)
  assert.equal(refValue(2 ** -14 - 2 ** -25, 0), 2 ** -14); // largest subnormal + half ulp -> smallest normal
  // The reference agrees with src/model/half.ts's binary16 encoder, written separately for safetensors.
  const xs = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 2 ** -25, 3 * 2 ** -25, 0.1, 12345.678, 2 ** -20 * 1.3];
  const f16val = (bits: number) => ((bits & 0x7c00) === 0 ? (bits & 0x3ff) * 2 ** -24 : ((bits & 0x3ff) + 1024) * 2 ** (((bits >> 10) & 31) - 25));
  const one = new Float32Array(1);
  for (const x of xs) {
    one[0] = x;
    assert.equal(refValue(one[0]!, 0), f16val(f32BitsToF16Bits(new Uint32Array(one.buffer)[0]!)), `x = ${x}`);
  }
});

test('fp16 edge cases equal the float64 reference on both paths (ties, subnormals, max finite, NaN, Inf, -0)', () => {
  // Max 2 - 2^-10 (11 bits, all ones): E = 0, e = -15, the max is binary16's largest finite 65504.
  const e1 = checkMessage([2 - 2 ** -10, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(0.5 + 2 ** -12), 2 ** -40, 3 * 2 ** -40, 3 * 2 ** -41, 2 ** -29, -0, 0], 'ties');
  assert.equal(e1, -15);
  const wire = new Uint8Array(4 + 2 * 4);
  fp16.encode(Float32Array.from([2 - 2 ** -10, 2 ** -40, 3 * 2 ** -40, -0]), wire);
  // 65504 = 0x7bff; 2^-40 * 2^15 = 2^-25 ties to 0; 3 * 2^-40 * 2^15 = 1.5 * 2^-24 ties to 2 * 2^-24; -0 keeps its sign.
  assert.deepEqual([...new Uint16Array(wire.buffer, 4, 4)], [0x7bff, 0x0000, 0x0002, 0x8000]);
  // A max that rounds up a binade at 11 bits: 2 - 2^-12 -> 2, so E = 1 and e = -14.
  assert.equal(checkMessage([2 - 2 ** -12, 1.25, -3 * 2 ** -30], 'binade'), -14);
  // Non-finite values do not set the scale and stay Inf / NaN.
  assert.equal(checkMessage([Infinity, -Infinity, NaN, 0.75, -0.001], 'non-finite'), -16);
  assert.equal(checkMessage([NaN, Infinity], 'only non-finite'), 0);
  // NaNs with payloads (a signalling one whose payload sits only in the low bits): quiet NaN on the wire, never Inf.
  const nans = new Float32Array(NATIVE_MIN_ELEMENTS);
  new Uint32Array(nans.buffer).set([0x7f800001, 0xffffe000, 0x7fc00000, 0x3f800000]);
  checkMessage(nans, 'NaN payloads');
  const w = new Uint8Array(4 + 2 * nans.length);
  fp16.encode(nans, w);
  assert.deepEqual([...new Uint16Array(w.buffer, 4, 3)], [0x7e00, 0xffff, 0x7e00]);
  assert.equal(checkMessage([0, -0], 'zeros'), 0);
  // Scales outside float32's range: 2^-e does not exist as a float32 for e < -126.
  assert.equal(checkMessage([2 ** -120, 3 * 2 ** -130, -(2 ** -140)], 'tiny'), -135);
  assert.equal(checkMessage([1e-40, 3e-42, -1.4e-45], 'subnormal float32 max'), -141);
  assert.equal(checkMessage([3e38, -1e30, 1], 'huge'), 112);
  // float32's largest rounds to 2^128 at 11 bits: documented to decode as Inf (within 2^-12 of the top).
  checkMessage([3.4028234663852886e38, 1], 'float32 max');
});

test('fp16 random messages of every dynamic range: reference, both paths bit for bit, off-vector lengths', () => {
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (const [n, spread] of [[NATIVE_MIN_ELEMENTS * 3 + 5, 10], [NATIVE_MIN_ELEMENTS + 1, 60], [NATIVE_MIN_ELEMENTS * 2 + 7, 140]] as const) {
    // Magnitudes 2^(-spread .. 0) times a random scale: from all-normal to deep binary16 subnormals.
    const scale = 2 ** Math.floor(rand() * 60 - 30);
    const x = Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * scale * 2 ** (-rand() * spread) * (1 + rand()));
    checkMessage(x, `random n=${n} spread=${spread}`, 0);
  }
});

test('fp16 re-encoding decoded values gives the same bytes (the all-gather forwards what it decoded)', () => {
  let s = 99;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let trial = 0; trial < 40; trial++) {
    const n = trial % 2 ? 17 : NATIVE_MIN_ELEMENTS + 3;
    const x = Float32Array.from({ length: n }, () => (rand() - 0.5) * 2 ** (rand() * 40 - 20));
    // Every few trials the max sits just below a binade so that it rounds up into the next one.
    if (trial % 4 === 0) x[3] = 2 ** (trial - 20) * (2 - 2 ** -13);
    const a = new Uint8Array(4 + 2 * n);
    fp16.encode(x, a);
    const y = new Float32Array(n);
    fp16.decode(a, y);
    const b = new Uint8Array(4 + 2 * n);
    fp16.encode(y, b);
    assert.deepEqual(b, a, `trial ${trial}`);
    const z = y.slice();
    fp16.roundTrip(z);
    assert.deepEqual(z, y);
  }
});

test('fp16 is registered as wire codec 3 with a 4-byte message header', () => {
  assert.equal(codecByWireId(3), fp16);
  assert.equal(codecs.fp16, fp16);
  assert.equal(fp16.payloadBytes(10), 24);
  assert.equal(fp16Exponent(new Uint32Array(0)), 0);
});

test('native fp16 kernels check their arguments', { skip: skipNative }, () => {
  const k = nativeK!;
  assert.throws(() => k.ringF16Encode(new Float32Array(4), new Uint8Array(10), 4), /ringF16Encode: argument 1 holds 10 bytes, 12 needed/);
  assert.throws(() => k.ringF16Encode(new Float32Array(4), new Uint8Array(12), 4, new Float32Array(3)), /ringF16Encode: argument 3 holds 12 bytes, 16 needed/);
  assert.throws(() => k.ringF16Decode(new Uint8Array(8), new Float32Array(4), 4), /ringF16Decode: argument 0 holds 8 bytes, 12 needed/);
  assert.throws(() => k.ringF16RoundTrip(new Float32Array(4), -1), /ringF16RoundTrip: argument 1 must be a non-negative element count/);
});
