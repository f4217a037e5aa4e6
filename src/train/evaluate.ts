/**
 * Runs the model over evaluation examples into a mergeable EvalState (src/eval/eval-state.ts holds
 * the state, its merge and the numbers): loss sums per batch, classification predictions, and for
 * prompted causal-LM sets greedy completions scored by the job's generation metrics. Every rank runs
 * this on its shard; the coordinator merges the states.
 * For generation, the prompt is everything before an example's first loss token and the reference
 * is the first run of loss tokens.
 * The examples are an ExampleSource: an array, or a cached split (data/example-store.ts) of which one
 * micro-batch is read at a time, so evaluation holds one batch of examples whatever the split's size.
 *
 * With a PredictionSink (src/eval/predictions.ts) each scored example's prediction goes to it as
 * well, in example order; the state is filled exactly as without one. `ringtune classify` runs the
 * same classifier forward (classifierOutputs), so its labels are eval's labels for the same tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import { collateCls, collateLm, type ClsBatch, type LmBatch } from '../data/batch.ts';
import type { ExampleSource } from '../data/dataset.ts';
import type { ClsExample, LmExample } from '../data/examples.ts';
import { addClassification, addGeneration, addLoss, emptyEvalState, type EvalState } from '../eval/eval-state.ts';
import type { GenerationMetric } from '../eval/index.ts';
import type { LmPrediction, PredictionSink } from '../eval/predictions.ts';
import { generate } from '../model/generate.ts';
import type { Model } from '../model/model.ts';
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
  model: Model, examples: ExampleSource<LmExample | ClsExample>, microBatch: number, padId: number, maxBatches?: number, generation?: GenerationOptions,
  sink?: PredictionSink,
): Promise<EvalState> {
  const isCls = model.task === 'classification';
  const gen = generation?.metrics.length && !isCls ? generation : undefined;
  const state = emptyEvalState({ numClasses: isCls ? model.config.numLabels : undefined, generation: gen?.metrics });
  const nBatches = Math.min(Math.ceil(examples.length / microBatch), maxBatches ?? Infinity);
  // Causal LM: lines wait for the generation pass, which may add a completion to them.
  const lmLines: LmPrediction[] = [];
  for (let bi = 0; bi < nBatches; bi++) {
    // One micro-batch read at a time: a cached split (example-store.ts) stays on disk.
    const chunk = examples.slice(bi * microBatch, (bi + 1) * microBatch);
    if (isCls) {
      const b = collateCls(chunk as ClsExample[], padId);
      const out = await classifierOutputs(model, b, !!sink);
      addLoss(state, out.lossSum, b.B);
      b.labels.forEach((label, i) => addClassification(state, out.predicted[i], label));
      if (sink) {
        const names = model.config.id2label;
        chunk.forEach((ex, i) => sink({
          id: ex.source, label: names[b.labels[i]], predicted: names[out.predicted[i]],
          scores: Object.fromEntries(out.probs[i].map((p, c) => [names[c], p])), loss: out.rowLoss[i],
        }));
      }
    } else {
      const b = collateLm(chunk as LmExample[], padId);
      if (!sink) {
        const loss = tf.tidy(() => batchLossSum(model, b));
        addLoss(state, (await loss.data())[0], b.lossTokens);
        loss.dispose();
        continue;
      }
      const { lossSum, rowNll, rowTokens } = await lmOutputsByRow(model, b);
      addLoss(state, lossSum, b.lossTokens);
      chunk.forEach((ex, i) => lmLines.push({ id: ex.source, loss: rowNll[i] / rowTokens[i], nll_sum: rowNll[i], tokens: rowTokens[i] }));
    }
  }
  if (gen) {
    await generateInto(state, model, examples as ExampleSource<LmExample>, gen, (i, generated, reference) => {
      if (lmLines[i]) Object.assign(lmLines[i], { generated, reference });
    });
  }
  if (sink) lmLines.forEach(sink);
  return state;
}

export interface ClassifierOutputs {
  /** Cross-entropy summed over the batch (what the EvalState adds). */
  lossSum: number;
  /** (B): argmax of the logits, the class the confusion matrix counts. */
  predicted: Int32Array;
  /** (B, C) softmax probabilities; empty unless asked for. */
  probs: number[][];
  /** (B) each example's cross-entropy; empty unless asked for. */
  rowLoss: number[];
}

/** One forward of a classification batch (labels are read only for the loss). */
export async function classifierOutputs(model: Model, b: ClsBatch, perExample: boolean): Promise<ClassifierOutputs> {
  const ts = tf.tidy(() => {
    const ids = tf.tensor2d(b.ids, [b.B, b.T], 'int32');
    const mask = tf.tensor2d(b.attentionMask, [b.B, b.T], 'int32');
    const lg = model.forward({ ids, lengths: b.lengths, attentionMask: mask }); // (B, C)
    const labels = tf.tensor1d(b.labels, 'int32');
    const out = [crossEntropySum(lg, labels, tf.ones([b.B])), tf.argMax(lg, 1)];
    if (!perExample) return out;
    const logP = tf.logSoftmax(lg); // (B, C)
    const picked = tf.sum(tf.mul(logP, tf.oneHot(labels, lg.shape[1])), 1); // (B) log p(label)
    return [...out, tf.exp(logP), tf.neg(picked)];
  });
  const [lossSum, predicted, probs, rowLoss] = await Promise.all(ts.map((t) => t.data()));
  tf.dispose(ts);
  const C = model.config.numLabels;
  return {
    lossSum: lossSum[0], predicted: predicted as Int32Array,
    probs: probs ? [...Array(b.B).keys()].map((i) => Array.from(probs.subarray(i * C, (i + 1) * C))) : [],
    rowLoss: rowLoss ? Array.from(rowLoss) : [],
  };
}

/**
 * The batch loss sum exactly as batchLossSum computes it (same forward, same kernel), plus each
 * row's NLL sum over its loss tokens: nll_n = logsumexp(z_n) - z_n[y_n], weighted, summed per row.
 */
async function lmOutputsByRow(model: Model, b: LmBatch): Promise<{ lossSum: number; rowNll: number[]; rowTokens: number[] }> {
  const [loss, rows] = tf.tidy(() => {
    const logits = model.forward({ ids: tf.tensor2d(b.ids, [b.B, b.T], 'int32') }); // (B*T, V)
    const targets = tf.tensor1d(b.targets, 'int32');
    const weights = tf.tensor1d(b.weights);
    const [N, V] = logits.shape;
    const flatIdx = tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), targets);
    const picked = tf.gather(tf.reshape(logits, [N * V]), flatIdx); // (N)
    const nll = tf.mul(tf.sub(tf.logSumExp(logits, -1), picked), weights); // (N)
    return [crossEntropySum(logits, targets, weights), tf.sum(tf.reshape(nll, [b.B, b.T]), 1)];
  });
  const [l, r] = await Promise.all([loss.data(), rows.data()]);
  tf.dispose([loss, rows]);
  const rowTokens = [...Array(b.B).keys()].map((i) => b.weights.subarray(i * b.T, (i + 1) * b.T).reduce((a, w) => a + w, 0));
  return { lossSum: l[0], rowNll: Array.from(r), rowTokens };
}

/** Prompt tokens and reference text of an example; undefined when it has no prompt (plain text). */
function split(ex: LmExample, decode: (ids: number[]) => string): { prompt: number[]; reference: string } | undefined {
  const first = ex.lossMask.indexOf(1);
  if (first <= 0) return undefined;
  let end = first;
  while (end < ex.tokens.length && ex.lossMask[end] === 1) end++;
  return { prompt: ex.tokens.slice(0, first), reference: decode(ex.tokens.slice(first, end)).trim() };
}

async function generateInto(
  state: EvalState, model: Model, examples: ExampleSource<LmExample>, o: GenerationOptions, onGenerated: (index: number, generated: string, reference: string) => void,
): Promise<void> {
  let used = 0;
  for (let i = 0; i < examples.length; i++) {
    if (used >= o.maxExamples) break;
    const ex = examples.at(i)!;
    const parts = split(ex, o.decode);
    if (!parts || parts.prompt.length >= model.config.maxPositions) continue;
    used++;
    const g = await generate(model, parts.prompt, { maxNewTokens: o.maxNewTokens, stopIds: o.stopIds });
    const generated = o.decode(g.ids).trim();
    addGeneration(state, generated, parts.reference);
    onGenerated(i, generated, parts.reference);
  }
}
