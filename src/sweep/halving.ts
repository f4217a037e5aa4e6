/**
 * Successive halving (Jamieson & Talwalkar 2016; the rung rule of ASHA, Li et al. 2020), pure:
 *   rungs   r_0 = min_steps, r_k = min_steps * eta^k while below max_steps, last rung = max_steps
 *   rung 0  every configuration trains r_0 steps
 *   rung k  the best floor(n_k / eta) (at least 1) of the n_k trials that ran rung k-1 continue,
 *           each from its own checkpoint, to r_k steps; the others are pruned
 * ASHA promotes asynchronously as soon as a trial is in the top 1/eta of its rung, which pays off
 * when many trials run at once. A sweep runs one trial at a time, so the rung-by-rung (synchronous)
 * form loses nothing and its decisions depend only on the metrics, never on timing: with the same
 * seed and the same metrics the same trials are promoted.
 * Ranking: by the metric in the sweep's mode; a failed trial or a non-finite metric ranks last; ties
 * go to the lower trial number.
 */

/** The step counts of the rungs. */
export function rungSteps(minSteps: number, maxSteps: number, eta: number): number[] {
  const rungs: number[] = [];
  for (let r = minSteps; r < maxSteps; r *= eta) rungs.push(r);
  rungs.push(maxSteps);
  return rungs;
}

export interface Ranked {
  id: string;
  /** undefined: the trial failed. */
  metric?: number;
}

/** Lower is better: the metric in `mode`'s direction; Infinity for a failed trial or a non-finite metric. */
export const score = (metric: number | undefined, mode: 'min' | 'max'): number =>
  (metric !== undefined && Number.isFinite(metric) ? (mode === 'min' ? metric : -metric) : Infinity);

/** Orders by score, ties (two Infinities included) to the lower trial id. */
export const byScore = (mode: 'min' | 'max') => (a: Ranked, b: Ranked): number =>
  score(a.metric, mode) - score(b.metric, mode) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Sorts best first (see the header for the rule); does not modify `trials`. */
export function rank<T extends Ranked>(trials: readonly T[], mode: 'min' | 'max'): T[] {
  return [...trials].sort(byScore(mode));
}

/**
 * The trials of a rung that continue to the next one: the best floor(n / eta), at least one, never
 * a failed one. Returned in trial order (the order the next rung runs them).
 */
export function promote<T extends Ranked>(rungResults: readonly T[], eta: number, mode: 'min' | 'max'): T[] {
  const k = Math.max(1, Math.floor(rungResults.length / eta));
  const best = rank(rungResults, mode).slice(0, k).filter((t) => t.metric !== undefined && Number.isFinite(t.metric));
  return best.sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** Greatest common divisor: the checkpoint interval that lands on every rung boundary. */
export function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
