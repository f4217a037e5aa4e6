/**
 * The shape every evaluation metric has, so that distributed evaluation gives exactly the numbers a
 * single process would:
 *
 *   worker k:     s_k = inputs_k.reduce(update, init())         (state: plain JSON numbers/arrays)
 *   coordinator:  s   = merge(s_1, merge(s_2, ...))             (associative, commutative)
 *   result:       compute(s) === compute(inputs.reduce(update, init()))
 *
 * States are sufficient statistics (counts, sums), never per-example lists, so they stay small and can
 * travel as JSON. Integer counts merge exactly; float sums are kept as exact partial sums (exact-sum.ts)
 * so that merge order does not change a single bit of the result either.
 *
 * Conventions:
 * - `update` may mutate `state` and returns it (cheap in the eval loop).
 * - `merge` never mutates its arguments: states arrive from the network and may be merged in any tree.
 * - `merge` checks that the two states come from compatible metrics (e.g. the same number of classes)
 *   and throws InputError otherwise.
 */
import { InputError } from '../errors.ts';

export interface Metric<State, Input, Result> {
  readonly name: string;
  init(): State;
  update(state: State, input: Input): State;
  merge(a: State, b: State): State;
  compute(state: State): Result;
}

/** Folds many worker states into one. An empty list gives the empty state. */
export function mergeStates<S>(metric: Metric<S, unknown, unknown>, states: readonly S[]): S {
  let acc = metric.init();
  for (const s of states) acc = metric.merge(acc, s);
  return acc;
}

/** Runs a whole list of inputs through one state: what a single process does. */
export function evaluate<S, I, R>(metric: Metric<S, I, R>, inputs: Iterable<I>): R {
  let state = metric.init();
  for (const input of inputs) state = metric.update(state, input);
  return metric.compute(state);
}

/** Throws InputError unless `value` is a non-negative integer (a count or label id). */
export function requireCount(metric: string, what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InputError(`${metric}: ${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Throws InputError unless `a` and `b` are arrays of equal length (shape check on merged states). */
export function requireSameLength(metric: string, what: string, a: unknown, b: unknown): void {
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) {
    const len = (x: unknown) => (Array.isArray(x) ? String(x.length) : typeof x);
    throw new InputError(
      `${metric}: cannot merge states with different ${what} (${len(a)} vs ${len(b)}); ` +
        'were the workers configured with the same metric options?',
    );
  }
}
