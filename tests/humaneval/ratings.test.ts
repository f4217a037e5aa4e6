/**
 * summarize(): ratings of two raters on a 2-model x 3-prompt set, every number worked out by hand.
 *   fluency scores (ann, bob) per prompt:      base            tuned
 *     prompt 0                                 (2, 2) -> 2     (4, 5) -> 4.5
 *     prompt 1                                 (3, 4) -> 3.5   (3, 4) -> 3.5
 *     prompt 2                                 (1, -) -> 1     (5, 5) -> 5
 *   base mean (2 + 3.5 + 1) / 3 = 6.5 / 3; tuned mean 13 / 3
 *   tuned vs base: wins prompts 0, 2, tie 1 -> (2 + 0.5) / 3; base vs tuned 0.5 / 3
 *   relevance: only ann -> no sample has two raters: alpha undefined
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { krippendorffAlpha } from '../../src/humaneval/krippendorff.ts';
import { summarize } from '../../src/humaneval/ratings.ts';
import type { Rating } from '../../src/humaneval/sheet.ts';
import { meanInterval } from '../../src/humaneval/stats.ts';
import { makeKey } from './helpers.ts';

test('per model mean +- CI over per-sample means, win rates with ties as half, alpha per criterion', () => {
  const key = makeKey({ prompts: 3 });
  const idOf = (model: string, prompt: number) => key.samples.find((s) => s.model === `secret-${model}` && s.prompt === prompt)!.id;
  const r = (rater: string, model: string, prompt: number, scores: Record<string, number>): Rating =>
    ({ id: idOf(model, prompt), rater, scores, comment: '', where: 'test' });
  const ratings = [
    r('ann', 'base', 0, { fluency: 2, relevance: 3 }), r('bob', 'base', 0, { fluency: 2 }),
    r('ann', 'base', 1, { fluency: 3 }), r('bob', 'base', 1, { fluency: 4 }),
    r('ann', 'base', 2, { fluency: 1 }),
    r('ann', 'tuned', 0, { fluency: 4, relevance: 5 }), r('bob', 'tuned', 0, { fluency: 5 }),
    r('ann', 'tuned', 1, { fluency: 3 }), r('bob', 'tuned', 1, { fluency: 4 }),
    r('ann', 'tuned', 2, { fluency: 5 }), r('bob', 'tuned', 2, { fluency: 5 }),
    { ...r('cy', 'tuned', 1, {}), comment: 'repeats itself' }, // a comment only: not a rating, not a rater
  ];
  const s = summarize(key, ratings);
  assert.deepEqual(s.raters, ['ann', 'bob']);
  assert.equal(s.ratings, 11);
  assert.equal(s.ratedSamples, 6);
  const [base, tuned] = s.models;
  assert.equal(base.model, 'secret-base');
  assert.deepEqual(base.criteria.fluency, { ...meanInterval([2, 3.5, 1]), ratings: 5 });
  assert.ok(Math.abs(base.criteria.fluency.mean! - 6.5 / 3) < 1e-12);
  assert.ok(Math.abs(tuned.criteria.fluency.mean! - 13 / 3) < 1e-12);
  assert.deepEqual(base.criteria.relevance, { n: 1, mean: 3, sd: null, low: null, high: null, ratings: 1 });
  assert.equal(base.criteria.diversity.n, 0);

  const flu = s.pairwise.find((p) => p.criterion === 'fluency')!;
  assert.deepEqual(flu, { criterion: 'fluency', a: 'secret-base', b: 'secret-tuned', prompts: 3, wins: 0, ties: 1, losses: 2, rate: 0.5 / 3 });
  const rel = s.pairwise.find((p) => p.criterion === 'relevance')!;
  assert.deepEqual([rel.prompts, rel.losses, rel.rate], [1, 1, 0]);

  const units = [[2, 2], [3, 4], [1], [4, 5], [3, 4], [5, 5]];
  const fluA = s.agreement.find((a) => a.criterion === 'fluency')!;
  assert.equal(fluA.alpha, krippendorffAlpha(units, 'ordinal').alpha);
  assert.equal(fluA.pairableUnits, 5);
  assert.equal(fluA.pairableValues, 10);
  assert.ok(fluA.alpha! > 0.5, 'raters mostly agree on the ranking');
  assert.equal(s.agreement.find((a) => a.criterion === 'relevance')!.alpha, null);
  assert.deepEqual(s.comments, [{ id: idOf('tuned', 1), model: 'secret-tuned', prompt: 'p1', rater: 'cy', comment: 'repeats itself' }]);
});
