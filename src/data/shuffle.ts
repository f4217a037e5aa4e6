/**
 * Index-level shuffling for data larger than memory: permutations of example indices, never of the
 * examples (the batch plan's epochs and the held-out eval share both draw from here).
 */
import type { Rng } from '../util/rng.ts';

/**
 * Rng.shuffle of [0, n) in a Uint32Array: the same draws and swaps, so the same permutation, at 4
 * bytes per index instead of a JS array's 8+ (a 100M-example epoch is 400 MB, not 800+).
 */
export function permutation(rng: Rng, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
