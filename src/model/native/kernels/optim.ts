/**
 * Native functions of the optim family (native/src/optim.cc). They are not tfjs kernels: AdamW and the
 * global-norm clip run over flat host Float32Arrays (src/optim), so they reach the addon directly through
 * loadAddon(), whichever tfjs backend is active. Bit-identical to the JavaScript loops they replace.
 */
import type { NativeKernel } from '../backend.ts';
import { loadAddon, type F32 } from '../addon.ts';

export const optimKernels: NativeKernel[] = [];

export interface OptimAddon {
  adamw(params: F32, grads: F32, m: F32, v: F32, decay: Uint8Array, beta1: number, beta2: number, eps: number,
    stepSize: number, sqrtBc2: number, decayFactor: number): void;
  sumSquares(grads: F32): number;
  scaleInPlace(grads: F32, scale: number): void;
  /** dst += src (same length), bit-identical to the JavaScript loop. */
  addInto(dst: F32, src: F32): void;
}

let cached: OptimAddon | null | undefined;

/** The addon's optim functions, or null when the addon is absent (or an older build lacks them). */
export function optimAddon(): OptimAddon | null {
  if (cached === undefined) {
    const a = loadAddon().addon as unknown as Partial<OptimAddon> | undefined;
    cached = a && typeof a.adamw === 'function' && typeof a.sumSquares === 'function' && typeof a.scaleInPlace === 'function' && typeof a.addInto === 'function' ? (a as OptimAddon) : null;
  }
  return cached;
}
