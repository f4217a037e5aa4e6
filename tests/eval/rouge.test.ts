import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lcsLength, rougeMetric, rougeScoreExample, rougeTokenize } from '../../src/eval/rouge.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { InputError } from '../../src/errors.ts';
import { reference } from './fixtures.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

test('rouge-score README: fox/dog example', () => {
  // target     "the quick brown fox jumps over the lazy dog"  (9 tokens)
  // prediction "the quick brown dog jumps on the log"         (8 tokens; "." dropped)
  // rouge1: overlap the x2, quick, brown, dog, jumps = 6 -> P 6/8 = 0.75, R 6/9 = 0.6667, F 0.7059
  // rouge2: overlap {the quick, quick brown} = 2 -> P 2/7, R 2/8, F = 2(2/7)(1/4) / (2/7 + 1/4) = 4/15
  // rougeL: LCS "the quick brown jumps the" = 5 -> P 5/8 = 0.625, R 5/9 = 0.5556, F 0.5882
  const s = rougeScoreExample('The quick brown dog jumps on the log.', ['The quick brown fox jumps over the lazy dog']);
  close(s.rouge1.precision, 0.75, 1e-15);
  close(s.rouge1.recall, 6 / 9, 1e-15);
  close(s.rouge1.fmeasure, 0.7058823529411765, 1e-15);
  close(s.rouge2.precision, 2 / 7, 1e-15);
  close(s.rouge2.recall, 0.25, 1e-15);
  close(s.rouge2.fmeasure, 4 / 15, 1e-15);
  close(s.rougeL.precision, 0.625, 1e-15);
  close(s.rougeL.recall, 5 / 9, 1e-15);
  close(s.rougeL.fmeasure, 0.5882352941176471, 1e-15);
});

test('rouge-score unit tests (rouge_scorer_test.py)', () => {
  // score(target, prediction) there; ours takes the prediction first.
  const one = rougeScoreExample('testing', ['testing one two']);
  assert.deepEqual([one.rouge1.precision, one.rouge1.recall, one.rouge1.fmeasure], [1, 1 / 3, 0.5]);
  const two = rougeScoreExample('testing one', ['testing one two']);
  assert.deepEqual([two.rouge2.precision, two.rouge2.recall], [1, 0.5]);
  close(two.rouge2.fmeasure, 2 / 3, 1e-15);
  close(two.rougeL.fmeasure, 4 / 5, 1e-15); // LCS 2: P 1, R 2/3
  close(rougeScoreExample('testing two', ['testing one two']).rougeL.fmeasure, 4 / 5, 1e-15); // non-consecutive
  const multi = rougeScoreExample('text first', ['first text', 'first something']);
  assert.deepEqual([multi.rouge1.fmeasure, multi.rouge2.fmeasure, multi.rougeL.fmeasure], [1, 0, 0.5]);
  const empty = rougeScoreExample('', ['testing one two']);
  assert.deepEqual([empty.rouge1, empty.rouge2, empty.rougeL].map((s) => s.fmeasure), [0, 0, 0]);
  assert.equal(lcsLength(['1', '2', '3', '4', '5'], ['2', '5', '3', '4']), 3);
  assert.equal(lcsLength(['1', '2'], ['8', '9']), 0);
});

test('against ROUGE-1.5.5 ground truth (rouge-score testdata/target.txt, prediction.txt)', () => {
  // Lines as in google-research/rouge/testdata; the scores are the ones the package's tests assert
  // from manual runs of the original ROUGE-1.5.5 perl script (5 decimals).
  const targets = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
  ];
  const predictions = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
  ];
  const expected = [
    { rouge1: [0.68750, 0.40741, 0.51163], rouge2: [0.53333, 0.30769, 0.39024], rougeL: [0.68750, 0.40741, 0.51163] },
    { rouge1: [0.65385, 0.40476, 0.50000], rouge2: [0.48000, 0.29268, 0.36364], rougeL: [0.65385, 0.40476, 0.50000] },
  ] as const;
  for (let i = 0; i < 2; i++) {
    const s = rougeScoreExample(predictions[i], [targets[i]]);
    for (const type of ['rouge1', 'rouge2', 'rougeL'] as const) {
      const [p, r, f] = expected[i][type];
      close(s[type].precision, p, 5e-6, `${i} ${type} P`);
      close(s[type].recall, r, 5e-6, `${i} ${type} R`);
      close(s[type].fmeasure, f, 5e-6, `${i} ${type} F`);
    }
  }
});

test('tokenizer: lowercase, non [a-z0-9] -> space, no stemming', () => {
  assert.deepEqual(rougeTokenize("It's the U.S.-based café, 2nd—runs!"), ['it', 's', 'the', 'u', 's', 'based', 'caf', '2nd', 'runs']);
  assert.deepEqual(rougeTokenize('  /  '), []);
});

test('per-example scores match rouge-score\'s Python code on random text', () => {
  for (const c of reference.rouge) {
    const s = rougeScoreExample(c.prediction, c.references);
    for (const type of ['rouge1', 'rouge2', 'rougeL'] as const) {
      assert.deepEqual([s[type].precision, s[type].recall, s[type].fmeasure], c.scores[type], JSON.stringify(c));
    }
  }
});

test('corpus value is the mean of per-example scores; empty state is NaN', () => {
  // ex1: rouge1 P 1, R 1/3, F 1/2 ; ex2: identical -> 1, 1, 1  => mean P 1, R 2/3, F 3/4
  const r = evaluate(rougeMetric(), [
    { prediction: 'testing', references: ['testing one two'] },
    { prediction: 'a b', references: ['a b'] },
  ]);
  assert.equal(r.count, 2);
  assert.deepEqual([r.rouge1.precision, r.rouge1.recall, r.rouge1.fmeasure], [1, 2 / 3, 3 / 4]);
  const m = rougeMetric();
  const e = m.compute(m.init());
  assert.ok(Number.isNaN(e.rouge1.fmeasure) && Number.isNaN(e.rougeL.recall) && e.count === 0);
});

test('merged shards give the bit-identical result (exact sums), and agree with a plain float mean to 1e-12', () => {
  const rand = rng(11);
  const words = ['the', 'cat', 'dog', 'sat', 'on', 'mat', 'quick', 'brown', 'fox', 'a'];
  const sent = () => Array.from({ length: Math.floor(rand() * 12) }, () => words[Math.floor(rand() * words.length)]).join(' ');
  const inputs = Array.from({ length: 151 }, () => ({ prediction: sent(), references: Array.from({ length: 1 + Math.floor(rand() * 2) }, sent) }));
  checkMergeExact(rougeMetric(), inputs);
  const naive = inputs.reduce((a, x) => a + rougeScoreExample(x.prediction, x.references).rougeL.fmeasure, 0) / inputs.length;
  close(evaluate(rougeMetric(), inputs).rougeL.fmeasure, naive, 1e-12);
});

test('no references is an InputError', () => {
  const m = rougeMetric();
  assert.throws(() => m.update(m.init(), { prediction: 'x', references: [] }), InputError);
});
