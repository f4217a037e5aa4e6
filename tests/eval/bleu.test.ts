import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bleuMetric, computeBleu, type BleuInput } from '../../src/eval/bleu.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { tokenize13a } from '../../src/eval/tokenizer-13a.ts';
import { InputError } from '../../src/errors.ts';
import { reference } from './fixtures.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

// sacreBLEU README: refs are given as reference *streams*; segment i has refs[0][i] and refs[1][i].
const README_REFS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];
const README_SYS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
const readme = (refs = README_REFS, sys = README_SYS): BleuInput[] => sys.map((hypothesis, i) => ({ hypothesis, references: refs.map((r) => r[i]) }));

test('sacreBLEU README: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)', () => {
  // 13a tokens: "The dog bit the man ." (6)  refs 6, 7 -> closest 6
  //             "It wasn't surprising ." (4)  refs 5, 5 -> 5
  //             "The man had just bitten him ." (7)  refs 6, 7 -> 7        sys 17, ref 18
  // 1-grams: 6/6 + {It, .} 2/4 + {The man had bitten him .} 6/7          = 14/17
  // 2-grams: 5/5 + 0/3 + {The man, man had} 2/6                          =  7/14
  // 3-grams: 4/4 + 0/2 + {The man had} 1/5                               =  5/11
  // 4-grams: 3/3 + 0/1 + 0/4                                             =  3/8
  // BLEU = exp(1 - 18/17) * (14/17 * 7/14 * 5/11 * 3/8)^(1/4) * 100 = 0.942873 * 0.514712 * 100 = 48.53
  const r = evaluate(bleuMetric(), readme());
  assert.deepEqual(r.counts, [14, 7, 5, 3]);
  assert.deepEqual(r.totals, [17, 14, 11, 8]);
  assert.equal(r.sysLen, 17);
  assert.equal(r.refLen, 18);
  assert.equal(r.ratio, 17 / 18);
  close(r.bp, Math.exp(1 - 18 / 17), 1e-15, 'bp');
  assert.deepEqual(r.precisions.map((p) => p.toFixed(1)), ['82.4', '50.0', '45.5', '37.5']);
  close(r.score, 48.530827, 1e-8, 'score'); // sacrebleu test/test_bleu.py: abs(bleu - 48.530827) < 1e-8
  close(r.score, 100 * Math.exp(1 - 18 / 17) * Math.pow((14 / 17) * (7 / 14) * (5 / 11) * (3 / 8), 1 / 4), 1e-12, 'closed form');
});

test("sacreBLEU README, variable references ('' dropped): BLEU = 29.44 82.4/42.9/27.3/12.5 ref_len = 19", () => {
  // Segment 0 keeps only "The dog had bit the man ." (7 tokens): 2-grams The dog, bit the, the man, man . = 4/5,
  // 3-grams bit the man, the man . = 2/4, 4-gram bit the man . = 1/3; ref_len 7 + 5 + 7 = 19.
  const refs = [['', README_REFS[0][1], README_REFS[0][2]], README_REFS[1]];
  const r = evaluate(bleuMetric(), readme(refs));
  assert.deepEqual(r.counts, [14, 6, 3, 1]);
  assert.equal(r.refLen, 19);
  assert.equal(r.score.toFixed(2), '29.44');
  close(r.score, 100 * Math.exp(1 - 19 / 17) * Math.pow((14 / 17) * (6 / 14) * (3 / 11) * (1 / 8), 1 / 4), 1e-12);
});

test('sacreBLEU test_bleu.py corpus cases: empty hypotheses give 0, tokenize=none gives 49.1919566', () => {
  assert.equal(evaluate(bleuMetric(), readme(README_REFS, ['', '', ''])).score, 0);
  close(evaluate(bleuMetric({ tokenize: 'none' }), readme()).score, 49.1919566, 1e-8);
  close(evaluate(bleuMetric({ smoothMethod: 'none' }), readme()).score, 48.530827, 1e-8);
});

test('sacreBLEU test_bleu.py statistics and scoring cases', () => {
  // "am I am a character sequence" vs "I am a symbol string sequence a a": counts [4,2,1,0], totals [6,5,4,3]
  const m = bleuMetric({ smoothMethod: 'floor' }); // raw_corpus_bleu = floor smoothing, default value 0.1
  const s = m.update(m.init(), { hypothesis: 'am I am a character sequence', references: ['I am a symbol string sequence a a'] });
  assert.deepEqual([s.correct, s.total, s.sysLen, s.refLen], [[4, 2, 1, 0], [6, 5, 4, 3], 6, 8]);
  // floor: p4 = 0.1/3; BLEU = exp(1 - 8/6) * (4/6 * 2/5 * 1/4 * 0.1/3)^(1/4) = 0.1555722182 (test_offset)
  close(m.compute(s).score / 100, 0.1555722182, 1e-8);
  assert.equal(computeBleu(s, { smoothMethod: 'floor', smoothValue: 0 }).score, 0); // offset 0 -> 0
  // default 'exp': the first zero order gets 1 / (2 * total) = 1/6
  close(computeBleu(s).score, 100 * Math.exp(1 - 8 / 6) * Math.pow((4 / 6) * (2 / 5) * (1 / 4) * (1 / 6), 1 / 4), 1e-12);
  // test_scoring: compute_bleu([9,7,5,3], [10,8,6,4], 11, 11) = 0.8375922397 = (0.9*0.875*5/6*0.75)^(1/4)
  const stats = { correct: [9, 7, 5, 3], total: [10, 8, 6, 4], sysLen: 11, refLen: 11 };
  close(computeBleu(stats, { smoothMethod: 'none' }).score / 100, 0.8375922397, 1e-8);
});

test('sacreBLEU test_sentence_bleu.py (#98, effective_order=True): every smoothing method', () => {
  // 13a: hyp 14 tokens, ref 10 -> BP 1; matches 1-grams {de, zahăr, în, alb, ;} 5/14, 2-grams {de zahăr, alb ;} 2/13,
  // 3-grams 0/12, 4-grams 0/11.  exp: (500/14 * 200/13 * 100/24 * 100/44)^(1/4) = 8.493
  const REF = 'producţia de zahăr brut se exprimă în zahăr alb;';
  const SYS = 'Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;';
  const cases = [
    ['exp', undefined, '13a', 8.493], ['none', undefined, '13a', 0.0], ['floor', undefined, '13a', 4.51688],
    ['floor', 0.1, '13a', 4.51688], ['floor', 0.5, '13a', 10.1], ['add-k', undefined, '13a', 14.882],
    ['add-k', 1, '13a', 14.882], ['add-k', 2, '13a', 21.389], ['exp', undefined, 'none', 7.347],
  ] as const;
  for (const [smoothMethod, smoothValue, tokenize, expected] of cases) {
    const m = bleuMetric({ smoothMethod, smoothValue, tokenize, effectiveOrder: true });
    close(evaluate(m, [{ hypothesis: SYS, references: [REF] }]).score, expected, 1e-3, `${smoothMethod} ${smoothValue} ${tokenize}`);
  }
  // #141: no match at all -> 0 whatever the smoothing
  for (const smoothMethod of ['exp', 'none', 'floor', 'add-k'] as const) {
    assert.equal(evaluate(bleuMetric({ smoothMethod, effectiveOrder: true }), [{ hypothesis: 'this is a cat', references: ['okay thanks'] }]).score, 0);
  }
});

test('one sentence by hand, with brevity penalty', () => {
  // hyp "The cat sat on the mat ." (7) vs ref "The cat sat on the red mat ." (8)
  // 1-grams 7/7; 2-grams 5/6 (not "the mat"); 3-grams 3/5 (The cat sat, cat sat on, sat on the); 4-grams 2/4
  // BLEU = exp(1 - 8/7) * (1 * 5/6 * 3/5 * 1/2)^(1/4) = exp(-1/7) * (1/4)^(1/4) = 0.866878 * 0.707107 = 61.298
  const r = evaluate(bleuMetric(), [{ hypothesis: 'The cat sat on the mat.', references: ['The cat sat on the red mat.'] }]);
  assert.deepEqual([r.counts, r.totals], [[7, 5, 3, 2], [7, 6, 5, 4]]);
  close(r.bp, Math.exp(-1 / 7), 1e-15);
  close(r.score, 100 * Math.exp(-1 / 7) * Math.SQRT1_2, 1e-12);
});

test('closest reference length, ties go to the shorter; clipping uses the max count over references', () => {
  const m = bleuMetric();
  // hyp 5 tokens; refs of 4 and 6 tokens are equally close -> 4
  const s = m.update(m.init(), { hypothesis: 'a a a a a', references: ['a b c d e f', 'a a b c'] });
  assert.equal(s.refLen, 4);
  // "a" occurs 5 times in hyp, at most 2 times in one reference -> clipped to 2
  assert.equal(s.correct[0], 2);
});

test('the 13a tokenizer and corpus statistics match sacreBLEU\'s Python code on random text', () => {
  for (const { input, output } of reference.tokenizer13a) assert.equal(tokenize13a(input), output, JSON.stringify(input));
  const m = bleuMetric();
  let total = m.init();
  for (const seg of reference.bleu.segments) {
    const s = m.update(m.init(), seg);
    assert.deepEqual([s.sysLen, s.refLen, ...s.correct, ...s.total], seg.stats, JSON.stringify(seg));
    total = m.merge(total, s);
  }
  const r = m.compute(total);
  const b = reference.bleu;
  assert.deepEqual([r.counts, r.totals, r.sysLen, r.refLen], [b.counts, b.totals, b.sys_len, b.ref_len]);
  close(r.score, b.score, 1e-12, 'score');
  r.precisions.forEach((p, i) => close(p, b.precisions[i], 1e-12, `p${i + 1}`));
});

test('merged shards give exactly the single-state result; states from other settings do not merge', () => {
  const rand = rng(3);
  const words = ['the', 'cat', 'dog', 'sat', 'on', 'mat', '.', ',', 'a', 'bit'];
  const sent = () => Array.from({ length: 1 + Math.floor(rand() * 9) }, () => words[Math.floor(rand() * words.length)]).join(' ');
  const inputs = Array.from({ length: 97 }, () => ({ hypothesis: sent(), references: Array.from({ length: 1 + Math.floor(rand() * 3) }, sent) }));
  checkMergeExact(bleuMetric(), inputs);
  assert.throws(() => bleuMetric().merge(bleuMetric().init(), bleuMetric({ lowercase: true }).init()), /different settings/);
});

test('edge cases: empty hypothesis counts its 0 length; no references is an InputError', () => {
  const r = evaluate(bleuMetric(), [{ hypothesis: '', references: ['a b c'] }]);
  assert.deepEqual([r.score, r.bp, r.sysLen, r.refLen], [0, 0, 0, 3]);
  assert.equal(bleuMetric().compute(bleuMetric().init()).score, 0); // empty state: 0, as sacreBLEU
  const m = bleuMetric();
  assert.throws(() => m.update(m.init(), { hypothesis: 'x', references: [] }), InputError);
  assert.throws(() => m.update(m.init(), { hypothesis: 'x', references: ['', ''] }), /no non-empty reference/);
  assert.throws(() => bleuMetric({ tokenize: 'intl' as '13a', maxNgramOrder: 0 }), /tokenize.*maxNgramOrder/);
});
