/**
 * Wire codecs for ring payloads. The accumulated sum always stays float32 on each rank; a codec only
 * decides how values travel between ranks.
 *
 *   fp32: 4 bytes per element, exact (a memcpy).
 *   bf16: 2 bytes per element, the upper half of the float32 bits rounded to nearest-even (the same
 *         rounding as torch's bfloat16 cast). Unit roundoff u = 2^-8 (8 significant bits).
 *   fp16: 2 bytes per element plus a 4-byte exponent per message: IEEE binary16 scaled by a power of
 *         two chosen from the message's max |x| (fp16.ts, with its error bound and error feedback).
 *         u = 2^-11.
 *
 * bf16 error bound (see bf16SumErrorBound): in reduce-scatter a chunk's partial sum is rounded to bf16
 * at each of its N-1 hops and the owner rounds the final sum once more before all-gather (so every
 * rank holds the value that went over the wire). With |p_k| <= (1+u)^N (1+v)^N sum|x| for every
 * partial sum and v = 2^-24 for the N-1 float32 adds:
 *   |result - exact| <= ((N * 2^-8) + (N-1) * 2^-24) * (1+2^-8)^N * (1+2^-24)^N * sum_r |x_r|
 * element-wise (no overflow). N = 1 sends nothing and is exact.
 *
 * Speed: the per-byte loops run in native code (kernels.ts, native/src/collective.cc) when the engine's
 * addon is built and a message has at least NATIVE_MIN_ELEMENTS values, else in the JavaScript loops
 * below; both give the same bits (tests/collective/kernels.test.ts).
 *
 * Byte order is little-endian on the wire; like every typed-array user here we assume a little-endian
 * host (x86-64, arm64) and check it once at import.
 */
import { endianness } from 'node:os';
import { RingProtocolError } from './errors.ts';
import { fp16 } from './fp16.ts';
import type { CodecName, WireCodec } from './wire-codec.ts';
import { NATIVE_MIN_ELEMENTS, ringKernels, type RingKernels } from './kernels.ts';

if (endianness() !== 'LE') throw new RingProtocolError('ringtune collectives need a little-endian host');

export type { CodecName, WireCodec } from './wire-codec.ts';

/** The native kernels when they are loaded and a call of n elements pays for its Node-API crossing. */
function native(n: number): RingKernels | null {
  return n >= NATIVE_MIN_ELEMENTS ? ringKernels() : null;
}

function f32View(bytes: Uint8Array, elements: number): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, elements);
}

export const fp32: WireCodec = {
  name: 'fp32',
  wireId: 1,
  bytesPerElement: 4,
  payloadBytes: (elements) => 4 * elements,
  encode(src, dst) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return src.byteLength;
  },
  accumulate(src, dst) {
    const k = native(dst.length);
    if (k) return k.ringF32Accumulate(src, dst, dst.length);
    const s = f32View(src, dst.length);
    // Unrolled by 4: ~1.6x faster in V8 here (same float32 adds, same bits).
    const n = dst.length;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      dst[i] = dst[i]! + s[i]!;
      dst[i + 1] = dst[i + 1]! + s[i + 1]!;
      dst[i + 2] = dst[i + 2]! + s[i + 2]!;
      dst[i + 3] = dst[i + 3]! + s[i + 3]!;
    }
    for (; i < n; i++) dst[i] = dst[i]! + s[i]!;
  },
  decode(src, dst) {
    dst.set(f32View(src, dst.length));
  },
  roundTrip() {},
};

/** float32 bits -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
function toBf16(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  // u + 0x7fff + lsb stays below 2^32 for every non-NaN u (largest is -inf = 0xff800000).
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

// Decoding bf16 needs float32 bits -> float32 value; done blockwise through one scratch block that is
// allocated once per process (16 KiB), never per message.
const BLOCK = 4096;
const scratchBits = new Uint32Array(BLOCK);
const scratchF32 = new Float32Array(scratchBits.buffer);

export const bf16: WireCodec = {
  name: 'bf16',
  wireId: 2,
  bytesPerElement: 2,
  payloadBytes: (elements) => 2 * elements,
  encode(src, dst) {
    const k = native(src.length);
    if (k) {
      k.ringBf16Encode(src, dst, src.length);
      return src.length * 2;
    }
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    const out = new Uint16Array(dst.buffer, dst.byteOffset, src.length);
    for (let i = 0; i < bits.length; i++) out[i] = toBf16(bits[i]!);
    return src.length * 2;
  },
  accumulate(src, dst) {
    const k = native(dst.length);
    if (k) return k.ringBf16Accumulate(src, dst, dst.length);
    const half = new Uint16Array(src.buffer, src.byteOffset, dst.length);
    for (let b = 0; b < dst.length; b += BLOCK) {
      const n = Math.min(BLOCK, dst.length - b);
      for (let i = 0; i < n; i++) scratchBits[i] = half[b + i]! << 16;
      for (let i = 0; i < n; i++) dst[b + i]! += scratchF32[i]!;
    }
  },
  decode(src, dst) {
    const k = native(dst.length);
    if (k) return k.ringBf16Decode(src, dst, dst.length);
    const half = new Uint16Array(src.buffer, src.byteOffset, dst.length);
    const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let i = 0; i < out.length; i++) out[i] = half[i]! << 16;
  },
  roundTrip(values) {
    const k = native(values.length);
    if (k) return k.ringBf16RoundTrip(values, values.length);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) bits[i] = toBf16(bits[i]!) << 16;
  },
};

export { fp16 };

export const codecs: Readonly<Record<CodecName, WireCodec>> = { fp32, bf16, fp16 };

/** Codec for a proto enum value, or undefined for an unknown one. */
export function codecByWireId(id: number): WireCodec | undefined {
  return id === 1 ? fp32 : id === 2 ? bf16 : id === 3 ? fp16 : undefined;
}

/**
 * Factor eps_N with |bf16 all-reduce sum - exact sum| <= eps_N * sum_r |x_r| per element
 * (derivation at the top of this file). eps_1 = 0; eps_2 ~ 0.0078; eps_8 ~ 0.032.
 */
export function bf16SumErrorBound(worldSize: number): number {
  if (worldSize <= 1) return 0;
  const u = 2 ** -8;
  const v = 2 ** -24;
  return (worldSize * u + (worldSize - 1) * v) * (1 + u) ** worldSize * (1 + v) ** worldSize;
}
