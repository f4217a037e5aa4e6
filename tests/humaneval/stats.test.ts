/**
 * The interval and win rates of `ratings import` against closed forms:
 *   t critical values where the Student t quantile has one:
 *     df 1 (Cauchy)  t = tan(pi (p - 1/2))
 *     df 2           t = (2p - 1) sqrt(2 / (4 p (1 - p)))
 *     df 4           t = 2 sqrt(q - 1), q = cos(acos(sqrt(a)) / 3) / sqrt(a), a = 4 p (1 - p)
 *   (p = 0.975 for a 95% interval), and the textbook table value t_{0.975, 10} = 2.228138852.
 *   mean +- CI of n = 2: half-width = t_{0.975,1} * sd / sqrt(2) = t * |x1 - x2| / 2.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meanInterval, winRate } from '../../src/humaneval/stats.ts';
import { tCritical } from '../../src/humaneval/student-t.ts';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('t critical values equal their closed forms', () => {
  for (const level of [0.9, 0.95, 0.99]) {
    const p = 1 - (1 - level) / 2;
    const a = 4 * p * (1 - p);
    const q = Math.cos(Math.acos(Math.sqrt(a)) / 3) / Math.sqrt(a);
    close(tCritical(1 - level, 1), Math.tan(Math.PI * (p - 0.5)), 1e-10, `df 1, ${level}`);
    close(tCritical(1 - level, 2), (2 * p - 1) * Math.sqrt(2 / a), 1e-10, `df 2, ${level}`);
    close(tCritical(1 - level, 4), 2 * Math.sqrt(q - 1), 1e-10, `df 4, ${level}`);
  }
  close(tCritical(0.05, 10), 2.228138852, 1e-9, 'df 10');
  close(tCritical(0.05, 1e7), 1.959963985, 1e-6, 'df -> infinity: the normal quantile');
});

test('mean +- t interval: n = 2 and n = 3 by hand; n = 1 has no interval, n = 0 no mean', () => {
  const two = meanInterval([2, 5]);
  const t1 = Math.tan(0.475 * Math.PI);
  assert.equal(two.mean, 3.5);
  close(two.sd!, 3 / Math.SQRT2, 1e-15, 'sd');
  close(two.low!, 3.5 - (t1 * 3) / 2, 1e-12, 'low');
  close(two.high!, 3.5 + (t1 * 3) / 2, 1e-12, 'high');

  // [1, 2, 4]: mean 7/3, sd^2 = ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
  const three = meanInterval([1, 2, 4]);
  const p = 0.975, t2 = (2 * p - 1) * Math.sqrt(2 / (4 * p * (1 - p)));
  close(three.sd!, Math.sqrt(7 / 3), 1e-15, 'sd');
  close(three.high! - three.mean!, t2 * Math.sqrt(7 / 3) / Math.sqrt(3), 1e-12, 'half width');
  assert.deepEqual(meanInterval([4]), { n: 1, mean: 4, sd: null, low: null, high: null });
  assert.deepEqual(meanInterval([]), { n: 0, mean: null, sd: null, low: null, high: null });
  assert.deepEqual(meanInterval([3, 3, 3]), { n: 3, mean: 3, sd: 0, low: 3, high: 3 });
});

test('win rate: per shared prompt, ties count half; prompts only one model has are left out', () => {
  const a = new Map([[0, 5], [1, 3], [2, 2], [3, 4], [9, 5]]);
  const b = new Map([[0, 4], [1, 3], [2, 4], [3, 1], [7, 1]]);
  // prompt 0: a wins, 1: tie, 2: b wins, 3: a wins -> (2 + 0.5) / 4
  assert.deepEqual(winRate(a, b), { prompts: 4, wins: 2, ties: 1, losses: 1, rate: 0.625 });
  assert.deepEqual(winRate(b, a), { prompts: 4, wins: 1, ties: 1, losses: 2, rate: 0.375 });
  assert.equal(winRate(new Map([[1, 3]]), new Map([[2, 3]])).rate, null);
});
