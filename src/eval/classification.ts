/**
 * Single-label classification: accuracy, precision / recall / F1 per class and averaged (macro, micro,
 * weighted), and the confusion matrix, from (predicted id, true id) pairs over `numClasses` classes.
 *
 * State: the confusion matrix C[true][predicted] (integer counts, rows = true class, columns =
 * predicted class, as sklearn.metrics.confusion_matrix). Counts add, so merge is exact.
 *
 * Per class c, with tp = C[c][c], support = sum_j C[c][j], predicted = sum_i C[i][c]:
 *   precision = tp / predicted      recall = tp / support      F1 = 2 tp / (support + predicted)
 * (F1 written with counts = 2PR/(P+R), one division, as sklearn >= 1.3 computes it.)
 * A zero denominator gives 0, as sklearn's zero_division=0: a class never predicted has precision 0,
 * a class never true has recall 0, and F1 is 0 when both are.
 *
 * Averages follow sklearn's precision_recall_fscore_support with its default labels=None:
 * - macro: unweighted mean over the classes that occur in y_true or y_pred. Classes in neither are
 *   reported per class (all 0) but left out of the macro mean, as sklearn leaves out labels it never
 *   saw. (Passing labels=range(k) to sklearn would count them as 0 instead.)
 * - micro: from the summed counts; for single-label data micro P = micro R = micro F1 = accuracy.
 * - weighted: mean of per-class values weighted by support.
 * Empty state (no examples): accuracy and every average is NaN ("no data", not a score of 0);
 * per-class values are 0 by the zero_division rule.
 */
import { InputError } from '../errors.ts';
import { requireCount, requireSameLength, type Metric } from './metric.ts';

export interface ClassificationOptions {
  numClasses: number;
}

export interface ClassificationInput {
  predicted: number;
  label: number;
}

export interface ClassificationState {
  numClasses: number;
  /** (numClasses, numClasses): confusion[trueClass][predictedClass] */
  confusion: number[][];
}

export interface PrecisionRecallF1 {
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassificationResult {
  count: number;
  accuracy: number;
  macro: PrecisionRecallF1;
  micro: PrecisionRecallF1;
  weighted: PrecisionRecallF1;
  /** Each array has numClasses entries. */
  perClass: { precision: number[]; recall: number[]; f1: number[]; support: number[]; predicted: number[] };
  confusionMatrix: number[][];
}

const ratio = (num: number, den: number) => (den === 0 ? 0 : num / den);
const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

export function classificationMetric(options: ClassificationOptions): Metric<ClassificationState, ClassificationInput, ClassificationResult> {
  const k = options.numClasses;
  if (!Number.isInteger(k) || k < 1) {
    throw new InputError(`classification: numClasses must be a positive integer, got ${JSON.stringify(k)}`);
  }
  const checkLabel = (what: string, v: unknown) => {
    requireCount('classification', what, v);
    if ((v as number) >= k) throw new InputError(`classification: ${what} ${String(v)} is out of range 0..${k - 1}`);
  };
  return {
    name: 'classification',
    init: () => ({ numClasses: k, confusion: Array.from({ length: k }, () => new Array<number>(k).fill(0)) }),
    update(state, { predicted, label }) {
      checkLabel('predicted label', predicted);
      checkLabel('true label', label);
      state.confusion[label][predicted] += 1;
      return state;
    },
    merge(a, b) {
      if (a.numClasses !== b.numClasses) {
        throw new InputError(`classification: cannot merge states over ${a.numClasses} and ${b.numClasses} classes`);
      }
      requireSameLength('classification', 'confusion rows', a.confusion, b.confusion);
      return {
        numClasses: a.numClasses,
        confusion: a.confusion.map((row, i) => {
          requireSameLength('classification', 'confusion columns', row, b.confusion[i]);
          return row.map((v, j) => requireCount('classification', 'confusion count', v + b.confusion[i][j]));
        }),
      };
    },
    compute: computeClassification,
  };
}

function computeClassification(state: ClassificationState): ClassificationResult {
  const C = state.confusion;
  const k = C.length;
  const support = C.map((row) => row.reduce((a, b) => a + b, 0));
  const predicted = C[0].map((_, j) => C.reduce((a, row) => a + row[j], 0));
  const tp = C.map((row, i) => row[i]);
  const count = support.reduce((a, b) => a + b, 0);
  const tpSum = tp.reduce((a, b) => a + b, 0);

  const precision = tp.map((t, c) => ratio(t, predicted[c]));
  const recall = tp.map((t, c) => ratio(t, support[c]));
  const f1 = tp.map((t, c) => ratio(2 * t, support[c] + predicted[c]));

  const seen = [...Array(k).keys()].filter((c) => support[c] > 0 || predicted[c] > 0);
  const weightedMean = (xs: number[]) => (count === 0 ? NaN : xs.reduce((a, x, c) => a + x * support[c], 0) / count);
  const accuracy = count === 0 ? NaN : tpSum / count;
  return {
    count,
    accuracy,
    macro: {
      precision: mean(seen.map((c) => precision[c])),
      recall: mean(seen.map((c) => recall[c])),
      f1: mean(seen.map((c) => f1[c])),
    },
    // Every example is one prediction and one truth: sum(predicted) = sum(support) = count.
    micro: { precision: accuracy, recall: accuracy, f1: accuracy },
    weighted: { precision: weightedMean(precision), recall: weightedMean(recall), f1: weightedMean(f1) },
    perClass: { precision, recall, f1, support, predicted },
    confusionMatrix: C.map((row) => row.slice()),
  };
}
