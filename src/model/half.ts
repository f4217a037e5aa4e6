/**
 * IEEE 754 binary16 (F16) and bfloat16 (BF16) <-> float32, scalar and bulk.
 *
 * Encoding to 16 bits rounds to nearest, ties to even, like numpy's `astype(float16)` and
 * torch's `.to(bfloat16)`. The scalar encoders take a JS number and round it to float32 first;
 * that double rounding (f64 -> f32 -> f16/bf16) is still exact, because float32 carries
 * 24 >= 2*11 + 2 significand bits (Figueroa, "When is double rounding innocuous?", 1995).
 *
 * The bulk functions work on raw bit patterns through typed-array views, so they assume a
 * little-endian host (every platform Node runs on); safetensors data is little-endian too.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bit pattern -> binary16 bit pattern, round-to-nearest-even; NaN stays NaN. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) {
    // Inf stays Inf. NaN keeps its top payload bits and is forced quiet so it cannot turn into Inf.
    return abs === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
  }
  // 65520 = halfway between 65504 (largest f16, odd mantissa) and 2^16: ties-to-even goes up -> Inf.
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    // Below 2^-14: an f16 subnormal, i.e. an integer multiple of 2^-24. 2^-25 (0x33000000) is the
    // tie between 0 and 2^-24 and goes to the even 0.
    if (abs <= 0x33000000) return sign;
    const exp = abs >>> 23; // 102..112
    const mant = (abs & 0x7fffff) | 0x800000; // value = mant * 2^(exp - 150)
    const shift = 126 - exp; // value / 2^-24 = mant >> shift, 14..24
    let q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) === 1)) q++; // q = 1024 carries into the smallest normal
    return sign | q;
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits; a carry out of the
  // mantissa correctly bumps the exponent.
  const rebased = abs - 0x38000000;
  let q = rebased >>> 13;
  const rem = rebased & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (q & 1) === 1)) q++;
  return sign | q;
}

/** float32 bit pattern -> bfloat16 bit pattern (the top half), round-to-nearest-even; NaN stays NaN. */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) {
    // Plain truncation could drop every set payload bit and leave Inf; set the quiet bit instead.
    return (bits >>> 16) | 0x0040;
  }
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry overflows into Inf correctly.
  return ((bits >>> 0) + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  return f32BitsToF16Bits(u32[0]!);
}

export function bf16ToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  return f32BitsToBf16Bits(u32[0]!);
}

// ---- bulk conversions over typed arrays (same length in and out) ----

let f16Table: Float32Array | undefined;

/** All 65536 binary16 values as float32, built once (256 KiB): decoding becomes one lookup each. */
function f16DecodeTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) f16Table[b] = f16ToF32(b);
    // NaN payloads: keep sign and payload like a hardware widening does (f16ToF32 returns canonical NaN).
    const bitsView = new Uint32Array(f16Table.buffer);
    for (let b = 0; b < 65536; b++) {
      if ((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0) bitsView[b] = ((b & 0x8000) << 16) | 0x7f800000 | ((b & 0x3ff) << 13);
    }
  }
  return f16Table;
}

export function decodeF16Array(src: Uint16Array, dst: Float32Array): void {
  const table = f16DecodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!;
}

export function decodeBf16Array(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

export function encodeF16Array(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]!);
}

export function encodeBf16Array(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToBf16Bits(bits[i]!);
}
