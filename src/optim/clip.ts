/**
 * Gradient clipping by global L2 norm (Pascanu et al. 2013; torch.nn.utils.clip_grad_norm_):
 *   norm = sqrt(sum g^2);  if norm > maxNorm: g *= maxNorm / (norm + 1e-6)
 * Returns the norm before clipping (what torch returns and what we report). maxNorm <= 0 disables.
 *
 * The sum of squares runs in a fixed order so that the native path (native/src/optim.cc: threads over
 * chunks, AVX over lanes) and this JavaScript loop give the same bits, whatever the thread count, and
 * replicas with and without the addon agree: chunks of SUM_SQUARES_CHUNK values, inside a chunk four
 * double accumulators over index mod 4 combined as (s0 + s1) + (s2 + s3), chunk sums added in order.
 * Each g^2 is exact in double, so only the order of additions matters; it differs from a plain
 * left-to-right sum by rounding only (~1e-16 relative), and the 4 chains also make the JS loop ~2x faster.
 */
import { optimAddon } from '../model/native/kernels/optim.ts';
import { scaleInPlace } from './flat-math.ts';

/** Must match kChunk in native/src/optim.cc. */
export const SUM_SQUARES_CHUNK = 4096;

/** sum g^2 in double in the fixed chunk/lane order above (the JavaScript definition). */
export function sumSquaresJs(g: Float32Array): number {
  const n = g.length;
  let total = 0;
  for (let b = 0; b < n; b += SUM_SQUARES_CHUNK) {
    const e = Math.min(b + SUM_SQUARES_CHUNK, n);
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let i = b;
    for (; i + 4 <= e; i += 4) {
      const a0 = g[i], a1 = g[i + 1], a2 = g[i + 2], a3 = g[i + 3];
      s0 += a0 * a0;
      s1 += a1 * a1;
      s2 += a2 * a2;
      s3 += a3 * a3;
    }
    if (i < e) s0 += g[i] * g[i];
    if (i + 1 < e) s1 += g[i + 1] * g[i + 1];
    if (i + 2 < e) s2 += g[i + 2] * g[i + 2];
    total += (s0 + s1) + (s2 + s3);
  }
  return total;
}

export function clipGlobalNorm(grads: Float32Array, maxNorm: number, useNative = true): number {
  const native = useNative ? optimAddon() : null;
  const norm = Math.sqrt(native ? native.sumSquares(grads) : sumSquaresJs(grads));
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    scaleInPlace(grads, scale, useNative);
  }
  return norm;
}
