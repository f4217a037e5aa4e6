/**
 * Runs the model over evaluation examples into a mergeable EvalState (src/eval/eval-state.ts holds
 * the state, its merge and the numbers): loss sums per batch, classification predictions, and for
 * prompted causal-LM sets greedy completions scored by the job's generation metrics. Every rank runs
 * this on its shard; the coordinator merges the states.
 * For generation, the prompt is everything before an example's first loss token and the reference
 * is the first run of loss tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import { collateCls, collateLm } from '../data/batch.ts';
import type { ClsExample, LmExample } from '../data/examples.ts';
import { addClassification, addGeneration, addLoss, emptyEvalState, type EvalState } from '../eval/eval-state.ts';
import type { GenerationMetric } from '../eval/index.ts';
import { generate } from '../model/generate.ts';
import type { Model } from '../model/model.ts';
import { BatchPlan } from './batch-plan.ts';
import { crossEntropySum } from './loss.ts';
import { batchLossSum } from './train-step.ts';

export interface GenerationOptions {
  metrics: readonly GenerationMetric[];
  maxNewTokens: number;
  maxExamples: number;
  decode: (ids: number[]) => string;
  stopIds: number[];
}

export async function evalState(
  model: Model, examples: readonly (LmExample | ClsExample)[], microBatch: number, padId: number, maxBatches?: number, generation?: GenerationOptions,
): Promise<EvalState> {
  const isCls = model.task === 'classification';
  const gen = generation?.metrics.length && !isCls ? generation : undefined;
  const state = emptyEvalState({ numClasses: isCls ? model.config.numLabels : undefined, generation: gen?.metrics });
  const batches = BatchPlan.chunks(examples, microBatch).slice(0, maxBatches);
  for (const chunk of batches) {
    if (isCls) {
      const b = collateCls(chunk as ClsExample[], padId);
      const [loss, logits] = tf.tidy(() => {
        const ids = tf.tensor2d(b.ids, [b.B, b.T], 'int32');
        const mask = tf.tensor2d(b.attentionMask, [b.B, b.T], 'int32');
        const lg = model.forward({ ids, lengths: b.lengths, attentionMask: mask });
        return [crossEntropySum(lg, tf.tensor1d(b.labels, 'int32'), tf.ones([b.B])), tf.argMax(lg, 1)];
      });
      addLoss(state, (await loss.data())[0], b.B);
      const pred = await logits.data();
      tf.dispose([loss, logits]);
      b.labels.forEach((label, i) => addClassification(state, pred[i], label));
    } else {
      const b = collateLm(chunk as LmExample[], padId);
      const loss = tf.tidy(() => batchLossSum(model, b));
      addLoss(state, (await loss.data())[0], b.lossTokens);
      loss.dispose();
    }
  }
  if (gen) await generateInto(state, model, examples as LmExample[], gen);
  return state;
}

/** Prompt tokens and reference text of an example; undefined when it has no prompt (plain text). */
function split(ex: LmExample, decode: (ids: number[]) => string): { prompt: number[]; reference: string } | undefined {
  const first = ex.lossMask.indexOf(1);
  if (first <= 0) return undefined;
  let end = first;
  while (end < ex.tokens.length && ex.lossMask[end] === 1) end++;
  return { prompt: ex.tokens.slice(0, first), reference: decode(ex.tokens.slice(first, end)).trim() };
}

async function generateInto(state: EvalState, model: Model, examples: readonly LmExample[], o: GenerationOptions): Promise<void> {
  let used = 0;
  for (const ex of examples) {
    if (used >= o.maxExamples) break;
    const parts = split(ex, o.decode);
    if (!parts || parts.prompt.length >= model.config.maxPositions) continue;
    used++;
    const g = await generate(model, parts.prompt, { maxNewTokens: o.maxNewTokens, stopIds: o.stopIds });
    addGeneration(state, o.decode(g.ids).trim(), parts.reference);
  }
}
