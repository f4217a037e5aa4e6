/**
 * Per-example predictions of an evaluation, one JSON line per evaluated example, so a user can see
 * what the model did and recompute every reported number from the file (`ringtune eval --predictions`).
 *
 *   classification  {"id": "data.jsonl:7", "label": "pos", "predicted": "neg", "scores": {"neg": 0.61, "pos": 0.39}, "loss": 0.94}
 *   causal LM       {"id": "data.jsonl:7", "loss": 2.31, "nll_sum": 23.1, "tokens": 10}
 *                   plus "generated" and "reference" for the examples the generation metrics ran on
 *
 * `id` is the example's source (file:line). Scores are softmax probabilities in label order, at full
 * float precision; `predicted` is the argmax of the logits, the class the confusion matrix counts.
 * `loss` is the example's own mean NLL (sum over its loss tokens / tokens; for a classifier its
 * cross-entropy); it is computed per row apart from the batch sums of the EvalState, so per-example
 * losses add up to the reported loss only to float32 rounding.
 *
 * The EvalState (eval-state.ts) stays sufficient statistics; predictions go to a sink beside it and
 * never travel between processes.
 */
import { access } from 'node:fs/promises';
import { InputError } from '../errors.ts';
import { stringifyRecord } from '../run/record-json.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export interface ClassificationPrediction {
  id: string;
  label: string;
  predicted: string;
  /** label name -> probability */
  scores: Record<string, number>;
  loss: number;
}

export interface LmPrediction {
  id: string;
  /** nll_sum / tokens; NaN when the example has no loss tokens. */
  loss: number;
  nll_sum: number;
  tokens: number;
  generated?: string;
  reference?: string;
}

export type Prediction = ClassificationPrediction | LmPrediction;

/** Receives each evaluated example's prediction, in example order. */
export type PredictionSink = (p: Prediction) => void;

/** Fails before any work when `path` exists and overwriting was not asked for. */
export async function checkPredictionsTarget(path: string, overwrite: boolean, flag = '--predictions'): Promise<void> {
  if (path === '-' || overwrite) return;
  if (await access(path).then(() => true, () => false)) {
    throw new InputError(`${flag} ${path} exists; pass --overwrite to replace it, or choose another file`);
  }
}

/** One JSON line per prediction; a non-finite number is the string "NaN" / "Infinity", as in every record (run/record-json.ts). */
export function predictionLines(predictions: readonly object[]): string {
  return predictions.map((p) => stringifyRecord(p) + '\n').join('');
}

/** Writes the file atomically (a reader sees all lines or the old file); `-` is stdout. */
export async function writePredictions(path: string, predictions: readonly object[]): Promise<void> {
  const text = predictionLines(predictions);
  if (path === '-') {
    await new Promise<void>((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await writeFileAtomic(path, text);
}
