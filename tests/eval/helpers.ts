// Shared checks for metric states: split a dataset into 1..5 random shards, evaluate each shard into its
// own state, merge in several orders and tree shapes (after a JSON round trip, as states travel between
// workers), and compare with the single-state result.
import assert from 'node:assert/strict';
import type { Metric } from '../../src/eval/metric.ts';
import { rng } from '../rng.ts';

export { rng };

export function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Assigns every item to one of `parts` shards at random (shards may be empty). */
export function randomSplit<T>(xs: readonly T[], parts: number, rand: () => number): T[][] {
  const shards: T[][] = Array.from({ length: parts }, () => []);
  for (const x of xs) shards[Math.floor(rand() * parts)].push(x);
  return shards;
}

const jsonRoundTrip = <S>(s: S): S => JSON.parse(JSON.stringify(s)) as S;

/**
 * For 1..5 shards and several seeds: the merged result equals the single-state result, whatever the
 * merge order (left fold, reversed fold, pairwise tree), with every state sent through JSON first.
 * `same` compares two results; default deepStrictEqual (exact, NaN equal to NaN).
 */
export function checkMergeExact<S, I, R>(
  metric: Metric<S, I, R>,
  inputs: readonly I[],
  same: (actual: R, expected: R) => void = (a, e) => assert.deepStrictEqual(a, e),
): void {
  let whole = metric.init();
  for (const x of inputs) whole = metric.update(whole, x);
  const expected = metric.compute(whole);
  for (let parts = 1; parts <= 5; parts++) {
    for (let seed = 1; seed <= 4; seed++) {
      const rand = rng(seed * 100 + parts);
      const states = randomSplit(inputs, parts, rand).map((shard) => {
        let s = metric.init();
        for (const x of shard) s = metric.update(s, x);
        return jsonRoundTrip(s);
      });
      const fold = (ss: S[]) => ss.reduce((acc, s) => metric.merge(acc, s), metric.init());
      const tree = (ss: S[]): S => (ss.length === 1 ? ss[0] : metric.merge(tree(ss.slice(0, ss.length >> 1)), tree(ss.slice(ss.length >> 1))));
      for (const merged of [fold(states), fold(states.slice().reverse()), fold(shuffle(states, rand)), tree(states)]) {
        same(metric.compute(merged), expected);
      }
      // Merge must not have mutated the shard states: merging again gives the same.
      same(metric.compute(fold(states)), expected);
    }
  }
}

/** Asserts |actual - expected| <= tol, with a message that shows both. */
export function close(actual: number, expected: number, tol: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what} ${actual} != ${expected} (tol ${tol})`);
}
