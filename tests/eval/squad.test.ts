import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeAnswer, squadF1, squadMetric } from '../../src/eval/squad.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { InputError } from '../../src/errors.ts';
import { reference } from './fixtures.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

test('SQuAD v1.1 normalisation: lower, drop punctuation, drop a/an/the as words, collapse whitespace', () => {
  assert.equal(normalizeAnswer('The Quick, brown fox!'), 'quick brown fox');
  assert.equal(normalizeAnswer('an apple a day'), 'apple day');
  assert.equal(normalizeAnswer('  Theater   anthem\tthem '), 'theater anthem them'); // "the" inside words stays
  assert.equal(normalizeAnswer('A.B.C.'), 'abc'); // punctuation goes first, then "abc" is no article
  assert.equal(normalizeAnswer('the-the'), 'thethe'); // "-" is removed before articles, leaving one word
  // Python's \b is Unicode-aware: an article glued to a non-ASCII letter or digit is not a word
  assert.equal(normalizeAnswer('éthe the東京 a² the 1'), 'éthe the東京 a² 1');
});

test('exact match and F1 by hand, max over gold answers, x100', () => {
  // ex1: "Denver Broncos" vs ["Denver Broncos", "the Denver Broncos"] -> EM 1, F1 1
  // ex2: "the cat sat on the mat" vs ["a cat sat on a hat"]: "cat sat on mat" vs "cat sat on hat",
  //      common 3 -> P = R = 3/4, F1 = 0.75, EM 0
  // ex3: "Paris" vs ["London", "paris, France"]: F1 vs "paris france" = P 1, R 1/2 -> 2/3; EM 0
  // EM = 100 * 1/3 = 33.33..;  F1 = 100 * (1 + 0.75 + 2/3) / 3 = 80.555..
  const r = evaluate(squadMetric(), [
    { prediction: 'Denver Broncos', answers: ['Denver Broncos', 'the Denver Broncos'] },
    { prediction: 'the cat sat on the mat', answers: ['a cat sat on a hat'] },
    { prediction: 'Paris', answers: ['London', 'paris, France'] },
  ]);
  assert.equal(r.count, 3);
  close(r.exactMatch, 100 / 3, 1e-12);
  close(r.f1, (100 * (1 + 0.75 + 2 / 3)) / 3, 1e-12);
  assert.equal(squadF1('the cat sat on the mat', 'a cat sat on a hat'), 0.75);
});

test('v1.1 quirk: answers that normalize to nothing give EM 1 but F1 0', () => {
  const r = evaluate(squadMetric(), [{ prediction: 'The.', answers: ['a'] }]);
  assert.deepEqual([r.exactMatch, r.f1], [100, 0]);
});

test('normalisation, EM and F1 match the official script\'s Python code on random text', () => {
  for (const c of reference.squad) {
    assert.equal(normalizeAnswer(c.prediction), c.normalized, JSON.stringify(c.prediction));
    const r = evaluate(squadMetric(), [c]);
    assert.equal(r.exactMatch, c.em ? 100 : 0, JSON.stringify(c));
    assert.equal(r.f1, 100 * c.f1, JSON.stringify(c));
  }
});

test('merged shards give the bit-identical result; empty state NaN; no answers is an InputError', () => {
  const rand = rng(5);
  const words = ['the', 'a', 'Denver', 'Broncos', 'cat', 'mat', 'Paris', 'France,', 'an', 'apple'];
  const sent = () => Array.from({ length: Math.floor(rand() * 5) }, () => words[Math.floor(rand() * words.length)]).join(' ');
  const inputs = Array.from({ length: 173 }, () => ({ prediction: sent(), answers: Array.from({ length: 1 + Math.floor(rand() * 3) }, sent) }));
  checkMergeExact(squadMetric(), inputs);
  const m = squadMetric();
  const e = m.compute(m.init());
  assert.ok(Number.isNaN(e.exactMatch) && Number.isNaN(e.f1));
  assert.throws(() => m.update(m.init(), { prediction: 'x', answers: [] }), InputError);
});
