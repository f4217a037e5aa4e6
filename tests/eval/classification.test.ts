import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classificationMetric, type ClassificationInput } from '../../src/eval/classification.ts';
import { evaluate } from '../../src/eval/metric.ts';
import { InputError } from '../../src/errors.ts';
import { checkMergeExact, close, rng } from './helpers.ts';

const pairs = (yTrue: number[], yPred: number[]): ClassificationInput[] => yTrue.map((label, i) => ({ label, predicted: yPred[i] }));

test('3-class example worked by hand (what sklearn classification_report prints)', () => {
  // y_true = [0,0,0, 1,1,1,1, 2,2,2]
  // y_pred = [0,1,0, 1,1,2,1, 2,0,0]
  // confusion (rows true, cols predicted):  [2 1 0]   support   = [3, 4, 3]
  //                                         [0 3 1]   predicted = [4, 4, 2]  (column sums)
  //                                         [2 0 1]   tp        = [2, 3, 1]
  // precision = tp / predicted = [2/4, 3/4, 1/2]
  // recall    = tp / support   = [2/3, 3/4, 1/3]
  // f1 = 2tp / (support + predicted) = [4/7, 6/8, 2/5]
  // macro P = (0.5 + 0.75 + 0.5) / 3 = 0.58333..;  macro R = (2/3 + 3/4 + 1/3) / 3 = 0.58333..
  // macro F1 = (4/7 + 0.75 + 0.4) / 3 = 0.57380952..
  // micro P = R = F1 = accuracy = 6/10
  // weighted P = (3*0.5 + 4*0.75 + 3*0.5) / 10 = 0.6;  weighted R = accuracy = 0.6
  // weighted F1 = (3*4/7 + 4*0.75 + 3*0.4) / 10 = 0.59142857..
  const r = evaluate(classificationMetric({ numClasses: 3 }), pairs([0, 0, 0, 1, 1, 1, 1, 2, 2, 2], [0, 1, 0, 1, 1, 2, 1, 2, 0, 0]));
  assert.deepEqual(r.confusionMatrix, [[2, 1, 0], [0, 3, 1], [2, 0, 1]]);
  assert.deepEqual(r.perClass.support, [3, 4, 3]);
  assert.deepEqual(r.perClass.predicted, [4, 4, 2]);
  assert.deepEqual(r.perClass.precision, [0.5, 0.75, 0.5]);
  assert.deepEqual(r.perClass.recall, [2 / 3, 0.75, 1 / 3]);
  assert.deepEqual(r.perClass.f1, [4 / 7, 0.75, 0.4]);
  assert.equal(r.count, 10);
  assert.equal(r.accuracy, 0.6);
  close(r.macro.precision, 0.5833333333333334, 1e-15, 'macro P');
  close(r.macro.recall, 0.5833333333333334, 1e-15, 'macro R');
  close(r.macro.f1, 0.5738095238095238, 1e-15, 'macro F1');
  assert.deepEqual(r.micro, { precision: 0.6, recall: 0.6, f1: 0.6 });
  close(r.weighted.precision, 0.6, 1e-15, 'weighted P');
  close(r.weighted.recall, 0.6, 1e-15, 'weighted R');
  close(r.weighted.f1, 0.5914285714285714, 1e-15, 'weighted F1');
});

test('zero_division=0: a class never predicted, a class never true', () => {
  // y_true = [0, 0, 1], y_pred = [0, 2, 2]; confusion [1 0 1] / [0 0 1] / [0 0 0]
  // class 0: P = 1/1, R = 1/2, F1 = 2*1/(2+1) = 2/3
  // class 1: never predicted -> P = 0 (0/0 -> 0), R = 0/1 = 0, F1 = 0
  // class 2: never true -> P = 0/2 = 0, R = 0 (0/0 -> 0), F1 = 0
  // all three occur in y_true or y_pred, so macro = mean over 3: P = 1/3, R = 1/6, F1 = 2/9
  const r = evaluate(classificationMetric({ numClasses: 3 }), pairs([0, 0, 1], [0, 2, 2]));
  assert.deepEqual(r.perClass.precision, [1, 0, 0]);
  assert.deepEqual(r.perClass.recall, [0.5, 0, 0]);
  assert.deepEqual(r.perClass.f1, [2 / 3, 0, 0]);
  close(r.macro.precision, 1 / 3, 1e-15);
  close(r.macro.recall, 1 / 6, 1e-15);
  close(r.macro.f1, 2 / 9, 1e-15);
  close(r.accuracy, 1 / 3, 1e-15);
});

test('a class in neither y_true nor y_pred is reported as 0 but left out of the macro mean (sklearn labels=None)', () => {
  // Same data as the 3-class example with numClasses = 5: classes 3 and 4 never occur.
  const r = evaluate(classificationMetric({ numClasses: 5 }), pairs([0, 0, 0, 1, 1, 1, 1, 2, 2, 2], [0, 1, 0, 1, 1, 2, 1, 2, 0, 0]));
  assert.deepEqual(r.perClass.f1.slice(3), [0, 0]);
  close(r.macro.f1, 0.5738095238095238, 1e-15);
  assert.equal(r.accuracy, 0.6);
});

test('empty state: accuracy and averages NaN, per-class 0', () => {
  const m = classificationMetric({ numClasses: 2 });
  const r = m.compute(m.init());
  assert.equal(r.count, 0);
  assert.ok(Number.isNaN(r.accuracy) && Number.isNaN(r.macro.f1) && Number.isNaN(r.micro.f1) && Number.isNaN(r.weighted.f1));
  assert.deepEqual(r.perClass.precision, [0, 0]);
});

test('merged shards give exactly the single-state result', () => {
  const rand = rng(7);
  const inputs = Array.from({ length: 203 }, () => ({ label: Math.floor(rand() * 4), predicted: Math.floor(rand() * 4) }));
  checkMergeExact(classificationMetric({ numClasses: 4 }), inputs);
});

test('bad labels, bad numClasses and mismatched states are InputErrors', () => {
  const m = classificationMetric({ numClasses: 3 });
  assert.throws(() => m.update(m.init(), { label: 3, predicted: 0 }), InputError);
  assert.throws(() => m.update(m.init(), { label: 0, predicted: 1.5 }), InputError);
  assert.throws(() => m.update(m.init(), { label: -1, predicted: 0 }), InputError);
  assert.throws(() => classificationMetric({ numClasses: 0 }), InputError);
  const other = classificationMetric({ numClasses: 4 });
  assert.throws(() => m.merge(m.init(), other.init()), /3 and 4 classes/);
});
