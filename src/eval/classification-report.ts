/**
 * The structured classification block of a report (eval_report.json `classification`, the `eval`
 * command's output, report.html's matrix): the numbers of classification.ts keyed by label name.
 * The flat EvalResult (accuracy, f1_macro, ...) that early stopping and metrics.jsonl read is left
 * as it is; this block adds what a flat record cannot hold.
 *
 * confusion_matrix[i][j] counts examples whose true label is labels[i] and predicted label is
 * labels[j] (rows = truth, columns = prediction, as sklearn.metrics.confusion_matrix).
 */
import { classificationMetric, type PrecisionRecallF1 } from './classification.ts';
import type { EvalState } from './eval-state.ts';

export interface ClassReport extends PrecisionRecallF1 {
  label: string;
  /** true examples of this class */
  support: number;
  /** examples predicted as this class */
  predicted: number;
}

export interface ClassificationReport {
  labels: string[];
  count: number;
  accuracy: number;
  confusion_matrix: number[][];
  per_class: ClassReport[];
  macro: PrecisionRecallF1;
  micro: PrecisionRecallF1;
  weighted: PrecisionRecallF1;
}

/**
 * The block for `state`, or undefined when the evaluation was not a classification. `labels` are
 * the names of class ids 0..k-1 (id2label); a missing name is written as LABEL_<id>, as transformers does.
 */
export function classificationReport(state: EvalState, labels: readonly string[] | Readonly<Record<number, string>>): ClassificationReport | undefined {
  if (!state.classification) return undefined;
  const k = state.classification.numClasses;
  const names = [...Array(k).keys()].map((i) => (labels as Record<number, string>)[i] ?? `LABEL_${i}`);
  const r = classificationMetric({ numClasses: k }).compute(state.classification);
  return {
    labels: names,
    count: r.count,
    accuracy: r.accuracy,
    confusion_matrix: r.confusionMatrix,
    per_class: names.map((label, c) => ({
      label, precision: r.perClass.precision[c], recall: r.perClass.recall[c], f1: r.perClass.f1[c],
      support: r.perClass.support[c], predicted: r.perClass.predicted[c],
    })),
    macro: r.macro,
    micro: r.micro,
    weighted: r.weighted,
  };
}
