/**
 * The ring's per-byte kernels in native code (native/src/collective.cc): fp32 accumulate and the bf16
 * and fp16 conversions, auto-vectorised C++ loops, bit-identical to the JavaScript loops in codecs.ts, which
 * stay the fallback. They live in the engine's addon (native/build/Release/ringtune_native.node, built
 * at `npm ci`; absent when the build was skipped, see native/build.mjs) and are used only when that
 * addon exports them, so an addon built before this file simply means the JavaScript path.
 *
 * Loaded here rather than through src/model/native/addon.ts so the collective does not depend on the
 * model package; node's require cache makes both the same module instance.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** n = elements; byte arguments may be any typed array view holding at least the bytes n needs. */
export interface RingKernels {
  /** dst[i] += float32 read from src (4n bytes). */
  ringF32Accumulate(src: ArrayBufferView, dst: Float32Array, n: number): void;
  /** dst (2n bytes) = bf16 of src[i], round to nearest even. */
  ringBf16Encode(src: Float32Array, dst: ArrayBufferView, n: number): void;
  /** dst[i] = float32 of the bf16 in src (2n bytes). */
  ringBf16Decode(src: ArrayBufferView, dst: Float32Array, n: number): void;
  /** dst[i] += float32 of the bf16 in src (2n bytes). */
  ringBf16Accumulate(src: ArrayBufferView, dst: Float32Array, n: number): void;
  /** values[i] = bf16 round trip of values[i], in place. */
  ringBf16RoundTrip(values: Float32Array, n: number): void;
}

/** The fp16 codec's kernels (fp16.ts): messages are int32 exponent e, then n binary16 values. */
export interface RingF16Kernels {
  /** dst (4 + 2n bytes) = e, f16(src[i] * 2^-e); residual[i] += src[i] - decoded[i] when given. */
  ringF16Encode(src: Float32Array, dst: ArrayBufferView, n: number, residual?: Float32Array): void;
  /** dst[i] = f16 value i of the message (4 + 2n bytes) times 2^e. */
  ringF16Decode(src: ArrayBufferView, dst: Float32Array, n: number): void;
  /** dst[i] += f16 value i of the message times 2^e. */
  ringF16Accumulate(src: ArrayBufferView, dst: Float32Array, n: number): void;
  /** values[i] = decode(encode(values))[i] in place; residual[i] += old - new when given. */
  ringF16RoundTrip(values: Float32Array, n: number, residual?: Float32Array): void;
}

/**
 * Below this many elements a message stays in JavaScript: a Node-API call costs ~0.1-0.3 us, the JS
 * loop ~0.3-1 ns per element, so the native call pays from a few hundred elements; the ring's
 * messages are 1 MiB (262,144 floats) by default.
 */
export const NATIVE_MIN_ELEMENTS = 1024;

const NAMES = ['ringF32Accumulate', 'ringBf16Encode', 'ringBf16Decode', 'ringBf16Accumulate', 'ringBf16RoundTrip'] as const;
// Checked apart from NAMES: an addon built before fp16 keeps bf16 native and fp16 in JavaScript.
const F16_NAMES = ['ringF16Encode', 'ringF16Decode', 'ringF16Accumulate', 'ringF16RoundTrip'] as const;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addonPath = join(root, 'native', 'build', 'Release', 'ringtune_native.node');

function load(): { kernels: RingKernels | null; f16: RingF16Kernels | null; why: string } {
  if (!existsSync(addonPath)) return { kernels: null, f16: null, why: `${addonPath} not built (native/build.mjs)` };
  try {
    const addon = createRequire(import.meta.url)(addonPath) as Record<string, unknown>;
    const missing = NAMES.filter((n) => typeof addon[n] !== 'function');
    if (missing.length > 0) return { kernels: null, f16: null, why: `the addon predates the ring kernels (no ${missing.join(', ')}); rebuild with node native/build.mjs` };
    const f16 = F16_NAMES.every((n) => typeof addon[n] === 'function') ? (addon as unknown as RingF16Kernels) : null;
    return { kernels: addon as unknown as RingKernels, f16, why: 'native' };
  } catch (err) {
    return { kernels: null, f16: null, why: `failed to load ${addonPath}: ${(err as Error).message.split('\n')[0]}` };
  }
}

const loaded = load();
let enabled = true;

/** The native kernels, or null (not built, too old, or switched off with useNativeRingKernels(false)). */
export function ringKernels(): RingKernels | null {
  return enabled ? loaded.kernels : null;
}

/** The native fp16 kernels, or null (as ringKernels(), or an addon built before fp16). */
export function ringF16Kernels(): RingF16Kernels | null {
  return enabled ? loaded.f16 : null;
}

/** Which path the codecs take and why: 'native', or the reason the JavaScript path is used. */
export function ringKernelsStatus(): string {
  return !loaded.kernels ? loaded.why : enabled ? 'native' : 'switched off (JavaScript path)';
}

/**
 * Switch the native kernels off (or on again) for this process: for A/B measurements
 * (bench/allreduce.ts --kernels js) and for tests that compare both paths. Results do not change.
 */
export function useNativeRingKernels(on: boolean): void {
  enabled = on;
}
