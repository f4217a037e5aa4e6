/**
 * One optimizer step, the same on one process and on every worker of a ring:
 *   1. forward + backward on each micro-batch, accumulating the gradient SUM, the loss sum and the
 *      number of loss tokens (causal LM) or examples (classification)
 *   2. all-reduce [grad sums..., loss sum, count] across workers (identity on one process)
 *   3. divide by the global count -> exactly the mean over the global batch, however it was split
 *   4. clip by global norm, AdamW, advance the schedule (every replica does the same arithmetic)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClsBatch, LmBatch } from '../data/batch.ts';
import type { Model } from '../model/model.ts';
import type { AdamW } from '../optim/adamw.ts';
import { clipGlobalNorm } from '../optim/clip.ts';
import { scaleInPlace } from '../optim/flat-math.ts';
import { crossEntropySum } from './loss.ts';
import type { FlatParams } from './flat-params.ts';

export type Batch = LmBatch | ClsBatch;

export interface StepContext {
  model: Model;
  flat: FlatParams;
  optimizer: AdamW;
  gradClip: number;
  /** Sums the buffer in place across workers. */
  allReduce?: (buffer: Float32Array) => Promise<void>;
}

export interface StepReport {
  loss: number; // global mean loss of this step
  count: number; // global loss tokens / examples
  gradNorm: number;
  lr: number;
  inputTokens: number; // local tokens fed through the model
  computeMs: number;
  reduceMs: number;
}

/** Sum of token (or example) losses of one micro-batch: a scalar to differentiate. */
export function batchLossSum(model: Model, b: Batch): tf.Scalar {
  const ids = tf.tensor2d(b.ids, [b.B, b.T], 'int32');
  if ('targets' in b) {
    return crossEntropySum(model.forward({ ids }), tf.tensor1d(b.targets, 'int32'), tf.tensor1d(b.weights));
  }
  const logits = model.forward({ ids, lengths: b.lengths, attentionMask: tf.tensor2d(b.attentionMask, [b.B, b.T], 'int32') });
  return crossEntropySum(logits, tf.tensor1d(b.labels, 'int32'), tf.ones([b.B]));
}

export async function trainStep(ctx: StepContext, microBatches: readonly Batch[], lr: number): Promise<StepReport> {
  const { model, flat } = ctx;
  const t0 = performance.now();
  flat.grads.fill(0);
  let lossSum = 0;
  let count = 0;
  let inputTokens = 0;
  for (const b of microBatches) {
    // A macrotask turn per micro-batch: tfjs resolves data() as microtasks, so without this no timer
    // (heartbeats) and no incoming control message (abort) would run during a whole step.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const { value, grads } = tf.variableGrads(() => batchLossSum(model, b), model.variables());
    lossSum += (await value.data())[0];
    await flat.readGrads(grads, true);
    tf.dispose([value, ...Object.values(grads)]);
    count += 'targets' in b ? b.lossTokens : b.B;
    inputTokens += b.B * b.T;
  }
  const t1 = performance.now();
  flat.extras[0] = lossSum;
  flat.extras[1] = count;
  if (ctx.allReduce) await ctx.allReduce(flat.reduceBuffer);
  const t2 = performance.now();
  const globalCount = flat.extras[1];
  const globalLoss = flat.extras[0];
  if (globalCount > 0) {
    scaleInPlace(flat.grads, 1 / globalCount);
  }
  const gradNorm = clipGlobalNorm(flat.grads, ctx.gradClip);
  // A global batch without any loss position (all targets masked or truncated away) changes nothing.
  if (globalCount > 0) {
    ctx.optimizer.update(flat.params, flat.grads, lr);
    flat.writeParams();
  }
  return {
    loss: globalCount > 0 ? globalLoss / globalCount : NaN, count: globalCount, gradNorm, lr, inputTokens,
    computeMs: t1 - t0, reduceMs: t2 - t1,
  };
}
