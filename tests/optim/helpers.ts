/** Shared by the optimizer tests: drive an optimizer through a gradient sequence, compare with a float64 reference. */
import type { Optimizer } from '../../src/optim/optimizer.ts';

/** The float32 parameters after `opt` applied every gradient in turn (step s at lrs[s]). */
export function trajectory(opt: Pick<Optimizer, 'update'>, theta0: readonly number[], grads: readonly (readonly number[])[], lrs: readonly number[]): Float32Array {
  const params = Float32Array.from(theta0);
  grads.forEach((g, s) => opt.update(params, Float32Array.from(g), lrs[s]));
  return params;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}
