/**
 * Exact float sums whose result does not depend on the order of additions, so that metric states
 * holding sums of per-example floats (ROUGE, SQuAD F1, NLL) merge to the bit-identical result.
 *
 * The sum is kept as a list of non-overlapping doubles ("partials", increasing magnitude) whose exact
 * mathematical sum is the exact sum of every value added. `exactSumValue` rounds that exact sum
 * correctly to the nearest double, so the value is a function of the multiset of inputs alone.
 * Algorithm: Shewchuk, "Adaptive Precision Floating-Point Arithmetic" (1997) / Python's `math.fsum`
 * (CPython Modules/mathmodule.c, msum + the half-way correction). Inputs must be finite and the sums must
 * stay far from overflow (metric values are, by construction).
 *
 * The partials are plain numbers, so a sum serialises as a JSON array; JSON round-trips doubles exactly.
 */
export type ExactSum = number[];

/** Adds `value` into `partials` in place (msum step) and returns it. */
export function exactSumAdd(partials: ExactSum, value: number): ExactSum {
  let x = value;
  let i = 0;
  for (let j = 0; j < partials.length; j++) {
    let y = partials[j];
    if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
    const hi = x + y;
    const lo = y - (hi - x); // exact: hi + lo === x + y (Dekker / Knuth two-sum with |x| >= |y|)
    if (lo !== 0) partials[i++] = lo;
    x = hi;
  }
  partials.length = i;
  partials.push(x);
  return partials;
}

/** A new exact sum of both arguments; neither is modified. */
export function exactSumMerge(a: ExactSum, b: ExactSum): ExactSum {
  const out = a.slice();
  for (const v of b) exactSumAdd(out, v);
  return out;
}

/** The exact sum rounded once to the nearest double (ties to even), as math.fsum returns it. */
export function exactSumValue(partials: ExactSum): number {
  let n = partials.length;
  if (n === 0) return 0;
  n -= 1;
  let hi = partials[n];
  let lo = 0;
  // Sum from the top down until the remaining partials cannot change the rounded result.
  while (n > 0) {
    const x = hi;
    n -= 1;
    const y = partials[n];
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  // Half-way case: if the rest has the same sign as `lo`, round away from the tie hi + lo would make.
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const y = lo * 2;
    const x = hi + y;
    const yr = x - hi;
    if (y === yr) hi = x;
  }
  return hi;
}

/** True when `v` looks like an ExactSum that came over the wire (array of finite numbers). */
export function isExactSum(v: unknown): v is ExactSum {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
}
