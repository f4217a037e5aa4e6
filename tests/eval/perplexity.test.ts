import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perplexityMetric } from '../../src/eval/perplexity.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { InputError } from '../../src/errors.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

test('closed form: a model that gives every token p = 1/4 has perplexity 4', () => {
  // 3 batches of 5, 2 and 9 tokens, each token NLL = ln 4: meanNll = ln 4, ppl = exp(ln 4) = 4
  const r = evaluate(perplexityMetric(), [5, 2, 9].map((tokens) => ({ nllSum: tokens * Math.log(4), tokens })));
  assert.equal(r.tokens, 16);
  close(r.meanNll, Math.log(4), 1e-15);
  close(r.perplexity, 4, 1e-14);
});

test('batches weigh by tokens, not equally', () => {
  // batch A: 1 token at NLL 3; batch B: 3 tokens at NLL 1 each -> mean = (3 + 3) / 4 = 1.5 (not (3 + 1) / 2 = 2)
  const r = evaluate(perplexityMetric(), [{ nllSum: 3, tokens: 1 }, { nllSum: 3, tokens: 3 }]);
  assert.equal(r.meanNll, 1.5);
  close(r.perplexity, Math.exp(1.5), 1e-15);
});

test('merged shards give the bit-identical result', () => {
  const rand = rng(9);
  const inputs = Array.from({ length: 211 }, () => {
    const tokens = Math.floor(rand() * 300);
    return { nllSum: tokens === 0 ? 0 : tokens * (0.5 + 4 * rand()), tokens };
  });
  checkMergeExact(perplexityMetric(), inputs);
});

test('empty state is NaN; negative or non-finite NLL is an InputError', () => {
  const m = perplexityMetric();
  const e = m.compute(m.init());
  assert.ok(Number.isNaN(e.meanNll) && Number.isNaN(e.perplexity) && e.tokens === 0);
  assert.throws(() => m.update(m.init(), { nllSum: -1, tokens: 2 }), InputError);
  assert.throws(() => m.update(m.init(), { nllSum: NaN, tokens: 2 }), InputError);
  assert.throws(() => m.update(m.init(), { nllSum: 1, tokens: 0 }), InputError);
  assert.throws(() => m.update(m.init(), { nllSum: 1, tokens: 1.5 }), InputError);
});
