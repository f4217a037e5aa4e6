/**
 * Successive halving's rungs and promotions, with metrics given by hand: who continues is decided
 * by the numbers and the trial ids only (failed and non-finite last, ties to the lower id).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gcd, promote, rank, rungSteps } from '../../src/sweep/halving.ts';

test('rungs: min_steps times eta^k below max_steps, then max_steps', () => {
  assert.deepEqual(rungSteps(10, 90, 3), [10, 30, 90]);
  assert.deepEqual(rungSteps(4, 10, 2), [4, 8, 10]);
  assert.deepEqual(rungSteps(5, 6, 4), [5, 6]);
  assert.equal([4, 8, 10].reduce(gcd, 0), 2, 'the checkpoint interval that lands on every rung');
});

test('promote: the best floor(n / eta) continue, in trial order; min and max modes', () => {
  const rung = [
    { id: 'trial-0001', metric: 2.5 }, { id: 'trial-0002', metric: 1.5 }, { id: 'trial-0003', metric: 3.0 },
    { id: 'trial-0004', metric: 1.0 }, { id: 'trial-0005', metric: 2.0 }, { id: 'trial-0006', metric: 4.0 },
  ];
  assert.deepEqual(promote(rung, 3, 'min').map((t) => t.id), ['trial-0002', 'trial-0004']);
  assert.deepEqual(promote(rung, 2, 'min').map((t) => t.id), ['trial-0002', 'trial-0004', 'trial-0005']);
  assert.deepEqual(promote(rung, 3, 'max').map((t) => t.id), ['trial-0003', 'trial-0006']);
  // Fewer than eta trials: the best one still continues.
  assert.deepEqual(promote(rung.slice(0, 2), 3, 'min').map((t) => t.id), ['trial-0002']);
  // The same input gives the same decision, whatever order the results arrive in.
  assert.deepEqual(promote([...rung].reverse(), 3, 'min'), promote(rung, 3, 'min'));
});

test('failed trials and non-finite metrics rank last and never continue; ties go to the lower id', () => {
  const rung = [
    { id: 'trial-0001', metric: undefined }, { id: 'trial-0002', metric: NaN }, { id: 'trial-0003', metric: 2 }, { id: 'trial-0004', metric: 2 },
  ];
  assert.deepEqual(rank(rung, 'min').map((t) => t.id), ['trial-0003', 'trial-0004', 'trial-0001', 'trial-0002']);
  assert.deepEqual(promote(rung, 2, 'min').map((t) => t.id), ['trial-0003', 'trial-0004']);
  assert.deepEqual(promote(rung.slice(0, 2), 2, 'min'), [], 'a rung of failures promotes nobody');
});
