/**
 * Evaluation over a list of examples, as a mergeable state (sums and a confusion matrix), so a
 * distributed run adds the states of its ranks and gets exactly the single-process result.
 *   causal LM:       loss = sum NLL / loss tokens, perplexity = exp(loss)
 *   classification:  loss = mean CE, accuracy, macro/micro F1 (src/eval/classification.ts)
 */
import * as tf from '@tensorflow/tfjs-core';
import { collateCls, collateLm } from '../data/batch.ts';
import type { ClsExample, LmExample } from '../data/examples.ts';
import { classificationMetric, type ClassificationState } from '../eval/classification.ts';
import type { Model } from '../model/model.ts';
import { BatchPlan } from './batch-plan.ts';
import { generationResults, generationStates, mergeGenerationStates, type GenerationOptions, type GenerationStates } from './generation-eval.ts';
import { crossEntropySum } from './loss.ts';
import { batchLossSum } from './train-step.ts';

export interface EvalState {
  lossSum: number;
  count: number;
  classification?: ClassificationState;
  generation?: GenerationStates;
}

export type EvalResult = Record<string, number>;

export async function evalState(
  model: Model, examples: readonly (LmExample | ClsExample)[], microBatch: number, padId: number, maxBatches?: number, generation?: GenerationOptions,
): Promise<EvalState> {
  const cls = model.task === 'classification' ? classificationMetric({ numClasses: model.config.numLabels }) : undefined;
  const state: EvalState = { lossSum: 0, count: 0, classification: cls?.init() };
  const batches = BatchPlan.chunks(examples, microBatch).slice(0, maxBatches);
  for (const chunk of batches) {
    if (cls) {
      const b = collateCls(chunk as ClsExample[], padId);
      const [loss, logits] = tf.tidy(() => {
        const ids = tf.tensor2d(b.ids, [b.B, b.T], 'int32');
        const mask = tf.tensor2d(b.attentionMask, [b.B, b.T], 'int32');
        const lg = model.forward({ ids, lengths: b.lengths, attentionMask: mask });
        return [crossEntropySum(lg, tf.tensor1d(b.labels, 'int32'), tf.ones([b.B])), tf.argMax(lg, 1)];
      });
      state.lossSum += (await loss.data())[0];
      const pred = await logits.data();
      tf.dispose([loss, logits]);
      b.labels.forEach((label, i) => cls.update(state.classification!, { predicted: pred[i], label }));
      state.count += b.B;
    } else {
      const b = collateLm(chunk as LmExample[], padId);
      const loss = tf.tidy(() => batchLossSum(model, b));
      state.lossSum += (await loss.data())[0];
      loss.dispose();
      state.count += b.lossTokens;
    }
  }
  if (generation && generation.metrics.length && !cls) state.generation = await generationStates(model, examples as LmExample[], generation);
  return state;
}

export function mergeEvalStates(a: EvalState, b: EvalState): EvalState {
  const cls = a.classification && classificationMetric({ numClasses: a.classification.numClasses });
  return {
    lossSum: a.lossSum + b.lossSum,
    count: a.count + b.count,
    classification: cls && b.classification ? cls.merge(a.classification!, b.classification) : a.classification,
    generation: a.generation && b.generation ? mergeGenerationStates(a.generation, b.generation) : a.generation,
  };
}

export function evalResult(state: EvalState): EvalResult {
  const loss = state.count > 0 ? state.lossSum / state.count : NaN;
  if (!state.classification) return { loss, perplexity: Math.exp(loss), tokens: state.count, ...(state.generation ? generationResults(state.generation) : {}) };
  const r = classificationMetric({ numClasses: state.classification.numClasses }).compute(state.classification);
  return {
    loss, accuracy: r.accuracy, f1_macro: r.macro.f1, precision_macro: r.macro.precision, recall_macro: r.macro.recall,
    f1_micro: r.micro.f1, examples: state.count,
  };
}
