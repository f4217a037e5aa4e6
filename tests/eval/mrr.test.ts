import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstRelevantRank, mrrMetric } from '../../src/eval/mrr.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { InputError } from '../../src/errors.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

// Wikipedia's MRR example: cat -> catten/cati/cats (rank 3), torus -> torii/tori/toruses (rank 2),
// virus -> viruses/virii/viri (rank 1).  MRR = (1/3 + 1/2 + 1) / 3 = 11/18 = 0.6111..
const EXAMPLE = [
  { ranked: ['catten', 'cati', 'cats'], relevant: ['cats'] },
  { ranked: ['torii', 'tori', 'toruses'], relevant: ['tori'] },
  { ranked: ['viruses', 'virii', 'viri'], relevant: ['viruses'] },
];

test('closed form: (1/3 + 1/2 + 1) / 3 = 11/18', () => {
  const r = evaluate(mrrMetric(), EXAMPLE);
  close(r.mrr, 11 / 18, 1e-15);
  assert.deepEqual([r.hitRate, r.count], [1, 3]);
});

test('only the first relevant item counts; no relevant item scores 0; cutoff k', () => {
  assert.equal(firstRelevantRank([7, 8, 9, 10], [10, 8]), 2);
  assert.equal(firstRelevantRank(['a', 'b'], ['z']), 0);
  assert.equal(firstRelevantRank([], ['z']), 0);
  // with a miss added: (1/3 + 1/2 + 1 + 0) / 4 = 11/24
  const withMiss = [...EXAMPLE, { ranked: ['x', 'y'], relevant: ['q'] }];
  close(evaluate(mrrMetric(), withMiss).mrr, 11 / 24, 1e-15);
  // MRR@2: the rank-3 hit no longer counts: (0 + 1/2 + 1 + 0) / 4 = 3/8; hit rate 2/4
  const r = evaluate(mrrMetric({ k: 2 }), withMiss);
  assert.deepEqual([r.mrr, r.hitRate], [3 / 8, 0.5]);
});

test('merged shards give exactly the single-state result', () => {
  const rand = rng(21);
  const inputs = Array.from({ length: 307 }, () => {
    const ranked = Array.from({ length: Math.floor(rand() * 30) }, (_, i) => i);
    return { ranked, relevant: [Math.floor(rand() * 40)] };
  });
  checkMergeExact(mrrMetric(), inputs);
  checkMergeExact(mrrMetric({ k: 10 }), inputs);
});

test('empty state is NaN; bad inputs and bad states are InputErrors', () => {
  const m = mrrMetric();
  const e = m.compute(m.init());
  assert.ok(Number.isNaN(e.mrr) && Number.isNaN(e.hitRate));
  assert.throws(() => m.update(m.init(), { ranked: 'abc' as unknown as string[], relevant: [] }), InputError);
  assert.throws(() => m.merge(m.init(), { count: 1, firstRelevantRank: { '0': 1 } }), InputError);
  assert.throws(() => mrrMetric({ k: 0 }), InputError);
});
