/**
 * The fp16 wire codec: IEEE binary16 with a per-message power-of-two scale, so it needs no loss
 * scaling from the user and never overflows a finite value.
 *
 * Message (4 + 2n bytes, self-describing: the ring's headers are unchanged):
 *   int32 LE e | n x binary16 LE h_i,   h_i = f16(x_i * 2^-e) round to nearest even (with subnormals),
 *   decoded x_i' = float32(f16value(h_i) * 2^e).
 * e is chosen from the message: E = float32 exponent of max finite |x_i| rounded to 11 significant
 * bits (E >= -126), e = E - 15. The largest value then lands in f16's top binade [2^15, 65504]
 * (the 11-bit rounding keeps it <= 65504 = 2^16 - 2^5), so:
 *   - no finite value overflows (Inf / NaN inputs stay Inf / NaN and do not set the scale);
 *   - encode(decode(encode(x))) has the same bits as encode(x): decoded values choose the same e,
 *     which the all-gather needs (a receiver forwards what it decoded; every rank must agree).
 *
 * Error of one rounding (u = 2^-11, M = the message's max |x|, valid while M >= 2^-100):
 *   |x' - x| <= u |x| + 2^-25 * 2^e <= u |x| + 2^-40 (1+u) M
 * (relative 2^-11 for values within 2^-29 of the max, an absolute floor below that: f16 subnormals).
 * bf16 has u = 2^-8 and no floor: fp16 is 8x finer at the same 2 bytes per value.
 *
 * N-rank all-reduce bound (fp16SumErrorBound): the same chain as bf16's (codecs.ts), N roundings of
 * partial sums and N-1 float32 adds, plus the absolute floor of each rounding:
 *   |result_i - exact_i| <= rel_N * S_i + abs_N * max_j S_j,   S_i = sum_r |x_r,i|
 *   rel_N = (N u + (N-1) v) (1+u)^N (1+v)^N,  v = 2^-24;  abs_N = N 2^-39 (1+u)^(N+1) (1+v)^N
 * (abs_N is twice the first-order N 2^-40 to cover the partial sums' own growth; max over the buffer
 * bounds every message's max).
 *
 * Error feedback (error-feedback.ts): while a residual sink is set for a buffer, every encode and
 * round trip of a view of that buffer adds x - x' to the residual at the same positions: the error
 * this rank introduced into the ring's result (its reduce-scatter sends and, as owner, the round trip
 * before the all-gather; forwarding decoded values adds exactly 0).
 */
import type { WireCodec } from './wire-codec.ts';
import { NATIVE_MIN_ELEMENTS, ringF16Kernels, type RingF16Kernels } from './kernels.ts';

/** Bytes of an fp16 message of n values: the exponent, then the values. */
export const FP16_HEADER_BYTES = 4;

/** Where error feedback collects this rank's rounding errors during one all-reduce. */
export interface ResidualSink {
  /** The buffer being all-reduced; only views of its memory are tracked. */
  readonly buffer: Float32Array;
  /** Same length as buffer; residual[i] += x_i - x_i' for each rounding this rank makes. */
  readonly residual: Float32Array;
}

// Usually none or one; several when ranks share a process (tests over memory peers).
const sinks = new Set<ResidualSink>();

/**
 * Track the rounding errors of encodes of views of `s.buffer` until the returned function is called;
 * error-feedback.ts does this around one all-reduce.
 */
export function addFp16ResidualSink(s: ResidualSink): () => void {
  if (s.residual.length !== s.buffer.length) throw new RangeError('residual and buffer lengths differ');
  sinks.add(s);
  return () => sinks.delete(s);
}

/** The residual at the positions `values` occupies in a sink's buffer, or undefined. */
function residualFor(values: Float32Array): Float32Array | undefined {
  for (const s of sinks) {
    if (values.buffer !== s.buffer.buffer) continue;
    const at = (values.byteOffset - s.buffer.byteOffset) / 4;
    if (at >= 0 && at + values.length <= s.buffer.length) return s.residual.subarray(at, at + values.length);
  }
  return undefined;
}

function native(n: number): RingF16Kernels | null {
  return n >= NATIVE_MIN_ELEMENTS ? ringF16Kernels() : null;
}

/** e for the float32 bit patterns `bits` (see the top of the file). */
export function fp16Exponent(bits: Uint32Array): number {
  let m = 0;
  for (let i = 0; i < bits.length; i++) {
    const a = bits[i]! & 0x7fffffff;
    if (a < 0x7f800000 && a > m) m = a;
  }
  if (m === 0) return 0;
  const r = (m + 0xfff + ((m >>> 13) & 1)) >>> 23;
  return Math.max(r, 1) - 127 - 15;
}

// Scratch for the JavaScript path, allocated once per process.
const one = new Float32Array(1);
const oneBits = new Uint32Array(one.buffer);
let table: Float32Array | null = null;

/** float32 value -> binary16 bits, round to nearest even; the caller scaled finite values to <= 65504. */
function toF16(x: number): number {
  one[0] = x;
  const u = oneBits[0]!;
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  // NaN: quiet, sign and top payload bits kept (what x86's VCVTPS2PH does); past 65504: Inf.
  if (a >= 0x47800000) return sign | (a > 0x7f800000 ? 0x7e00 | ((a >>> 13) & 0x3ff) : 0x7c00);
  if (a < 0x38800000) {
    // Subnormal: |x| + 0.5 in float32 (ulp 2^-24) rounds to the f16 grid; the sum's low bits are h.
    // The double sum rounded to float32 is the float32 sum (double rounding is innocuous for +).
    one[0] = Math.abs(one[0]!) + 0.5;
    return sign | (oneBits[0]! - 0x3f000000);
  }
  return sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
}

/** binary16 bits -> value, as a 65,536-entry table built on first use (256 KiB). */
function f16Table(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    const mag = exp === 0 ? mant * 2 ** -24 : exp === 31 ? (mant === 0 ? Infinity : NaN) : (1024 + mant) * 2 ** (exp - 25);
    table[h] = h & 0x8000 ? -mag : mag;
  }
  return table;
}

function exponentOf(values: Float32Array): number {
  return fp16Exponent(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

function readExponent(src: Uint8Array): number {
  return new Int32Array(src.buffer, src.byteOffset, 1)[0]!;
}

/** h[i] = f16(src[i] * 2^-e); residual[i] += src[i] - decoded when given. JavaScript path. */
function encodeJs(src: Float32Array, h: Uint16Array, e: number, residual: Float32Array | undefined): void {
  const down = 2 ** -e; // exact in double for every e in [-141, 113]
  const up = 2 ** e;
  const t = f16Table();
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    const q = toF16(Math.fround(x * down));
    h[i] = q;
    if (residual) residual[i] = residual[i]! + (x - Math.fround(t[q]! * up));
  }
}

export const fp16: WireCodec = {
  name: 'fp16',
  wireId: 3,
  bytesPerElement: 2,
  payloadBytes: (elements) => FP16_HEADER_BYTES + 2 * elements,
  encode(src, dst) {
    const residual = residualFor(src);
    const k = native(src.length);
    if (k) {
      k.ringF16Encode(src, dst, src.length, residual);
    } else {
      const e = exponentOf(src);
      new Int32Array(dst.buffer, dst.byteOffset, 1)[0] = e;
      encodeJs(src, new Uint16Array(dst.buffer, dst.byteOffset + FP16_HEADER_BYTES, src.length), e, residual);
    }
    return FP16_HEADER_BYTES + 2 * src.length;
  },
  accumulate(src, dst) {
    const k = native(dst.length);
    if (k) return k.ringF16Accumulate(src, dst, dst.length);
    const up = 2 ** readExponent(src);
    const h = new Uint16Array(src.buffer, src.byteOffset + FP16_HEADER_BYTES, dst.length);
    const t = f16Table();
    // fround first: the decoded value is a float32 (it differs from the exact product only below 2^-126).
    for (let i = 0; i < dst.length; i++) dst[i] = dst[i]! + Math.fround(t[h[i]!]! * up);
  },
  decode(src, dst) {
    const k = native(dst.length);
    if (k) return k.ringF16Decode(src, dst, dst.length);
    const up = 2 ** readExponent(src);
    const h = new Uint16Array(src.buffer, src.byteOffset + FP16_HEADER_BYTES, dst.length);
    const t = f16Table();
    for (let i = 0; i < dst.length; i++) dst[i] = t[h[i]!]! * up;
  },
  roundTrip(values) {
    const residual = residualFor(values);
    const k = native(values.length);
    if (k) return k.ringF16RoundTrip(values, values.length, residual);
    const e = exponentOf(values);
    const up = 2 ** e;
    const down = 2 ** -e;
    const t = f16Table();
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      const y = Math.fround(t[toF16(Math.fround(x * down))]! * up);
      if (residual) residual[i] = residual[i]! + (x - y);
      values[i] = y;
    }
  },
};

/**
 * rel_N and abs_N with |fp16 all-reduce sum_i - exact_i| <= rel_N * S_i + abs_N * max_j S_j per element
 * (derivation at the top of this file). N = 1 sends nothing and is exact: both 0.
 */
export function fp16SumErrorBound(worldSize: number): { relative: number; absolute: number } {
  if (worldSize <= 1) return { relative: 0, absolute: 0 };
  const n = worldSize;
  const u = 2 ** -11;
  const v = 2 ** -24;
  const growth = (1 + u) ** n * (1 + v) ** n;
  return { relative: (n * u + (n - 1) * v) * growth, absolute: n * 2 ** -39 * (1 + u) * growth };
}
