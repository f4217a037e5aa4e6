/**
 * One optimizer step, the same on one process and on every worker of a ring:
 *   1. forward + backward on each micro-batch, accumulating the gradient SUM, the loss sum and the
 *      number of loss tokens (causal LM) or examples (classification)
 *   2. all-reduce [grad sums..., loss sum, count, stop votes] across workers (identity on one process);
 *      the three after the gradient are summed exactly (fp32) whatever the gradient's wire codec
 *   3. divide by the global count -> exactly the mean over the global batch, however it was split
 *   4. a non-finite loss or gradient norm fails the step (NonFiniteError) or skips its update, as
 *      training.on_nonfinite says; judged on the all-reduced numbers, so every rank reaches the same verdict
 *   5. clip by global norm, the optimizer (training.optimizer), advance the schedule (every replica does the same arithmetic)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClsBatch, LmBatch } from '../data/batch.ts';
import { NonFiniteError } from '../errors.ts';
import type { TrainPass } from '../model/lora.ts';
import type { Model } from '../model/model.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import { clipGlobalNorm } from '../optim/clip.ts';
import { scaleInPlace } from '../optim/flat-math.ts';
import type { ActivitySink } from './activity.ts';
import { crossEntropySum } from './loss.ts';
import type { FlatParams } from './flat-params.ts';

export type Batch = LmBatch | ClsBatch;

export interface StepContext {
  model: Model;
  flat: FlatParams;
  optimizer: Optimizer;
  gradClip: number;
  /** Sums the buffer in place across workers. */
  allReduce?: (buffer: Float32Array) => Promise<void>;
  /** training.on_nonfinite; default 'fail'. */
  onNonFinite?: NonFinitePolicy;
  /** The step being taken (1-based) and this worker's rank, for the NonFiniteError message (the step also for LoRA dropout's masks). */
  step?: number;
  rank?: number;
  /** training.seed: with the step and each example's global index it picks the LoRA dropout masks (default 0). */
  seed?: number;
  /**
   * Global training-set index of each row of each micro-batch (LoRA dropout masks follow the example,
   * not the micro-batch or rank it lands in). Absent: the row's position among this call's examples.
   */
  examples?: readonly (readonly number[])[];
  /** This rank's vote to stop after this step (a signal or the coordinator asked). */
  stopVote?: () => boolean;
  /** Told at each phase of the step (liveness reports say what a busy rank is doing). */
  activity?: ActivitySink;
}

/** fail: stop the run with NonFiniteError. skip_step: leave parameters and optimizer state as they were. */
export type NonFinitePolicy = 'fail' | 'skip_step';

export interface StepReport {
  loss: number; // global mean loss of this step
  count: number; // global loss tokens / examples
  gradNorm: number;
  lr: number;
  inputTokens: number; // local tokens fed through the model
  localLoss: number; // this rank's own loss sum / count before the all-reduce (NaN without loss tokens)
  /** The loss or gradient norm was not finite and on_nonfinite is skip_step: nothing was updated. */
  skippedNonFinite: boolean;
  /** Some rank voted to stop in this step's all-reduce: every rank stops after it. */
  stopAgreed: boolean;
  computeMs: number;
  reduceMs: number;
  /** Clip + optimizer update + writing the parameters back (0 when the step changed nothing). */
  updateMs: number;
}

/** Sum of token (or example) losses of one micro-batch: a scalar to differentiate. `train`: a training forward (LoRA dropout on). */
export function batchLossSum(model: Model, b: Batch, train?: TrainPass): tf.Scalar {
  const ids = tf.tensor2d(b.ids, [b.B, b.T], 'int32');
  if ('targets' in b) {
    return crossEntropySum(model.forward({ ids, train }), tf.tensor1d(b.targets, 'int32'), tf.tensor1d(b.weights));
  }
  const logits = model.forward({ ids, lengths: b.lengths, attentionMask: tf.tensor2d(b.attentionMask, [b.B, b.T], 'int32'), train });
  return crossEntropySum(logits, tf.tensor1d(b.labels, 'int32'), tf.ones([b.B]));
}

export async function trainStep(ctx: StepContext, microBatches: readonly Batch[], lr: number): Promise<StepReport> {
  const { model, flat } = ctx;
  const t0 = performance.now();
  flat.grads.fill(0);
  let lossSum = 0;
  let count = 0;
  let inputTokens = 0;
  let rows = 0;
  const done = (ctx.step ?? 1) - 1;
  for (const [i, b] of microBatches.entries()) {
    ctx.activity?.('compute', done, [i + 1, microBatches.length]);
    // A macrotask turn per micro-batch: tfjs resolves data() as microtasks, so without this no timer
    // (heartbeats) and no incoming control message (abort) would run during a whole step.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const train = { seed: ctx.seed ?? 0, step: ctx.step ?? 1, examples: ctx.examples?.[i] ?? [...Array(b.B).keys()].map((r) => rows + r) };
    const { value, grads } = tf.variableGrads(() => batchLossSum(model, b, train), model.variables());
    lossSum += (await value.data())[0];
    await flat.readGrads(grads, true);
    tf.dispose([value, ...Object.values(grads)]);
    count += 'targets' in b ? b.lossTokens : b.B;
    rows += b.B;
    inputTokens += b.B * b.T;
  }
  const t1 = performance.now();
  flat.extras[0] = lossSum;
  flat.extras[1] = count;
  // A rank asked to stop votes in the step's own all-reduce, so every rank learns it after the same
  // step (a control message could arrive a step late on one rank and hang the others in the ring).
  flat.extras[2] = ctx.stopVote?.() ? 1 : 0;
  if (ctx.allReduce) {
    ctx.activity?.('all-reduce', done);
    await ctx.allReduce(flat.reduceBuffer);
  }
  const stopAgreed = flat.extras[2] > 0;
  const t2 = performance.now();
  const globalCount = flat.extras[1];
  const globalLoss = flat.extras[0];
  if (globalCount > 0) {
    scaleInPlace(flat.grads, 1 / globalCount);
  }
  const gradNorm = clipGlobalNorm(flat.grads, ctx.gradClip);
  const loss = globalCount > 0 ? globalLoss / globalCount : NaN;
  // A NaN or Inf anywhere in any rank's gradient or loss reaches the global norm and loss sum.
  const nonFinite = globalCount > 0 && !(Number.isFinite(loss) && Number.isFinite(gradNorm));
  if (nonFinite && (ctx.onNonFinite ?? 'fail') === 'fail') throw nonFiniteError(ctx, loss, gradNorm, lossSum);
  // A global batch without any loss position (all targets masked or truncated away) changes nothing;
  // a skipped step neither (the optimizer's step count and state stay too, as if the batch never came).
  if (globalCount > 0 && !nonFinite) {
    ctx.activity?.('update', done);
    ctx.optimizer.update(flat.params, flat.grads, lr);
    flat.writeParams();
  }
  return {
    loss, count: globalCount, gradNorm, lr, inputTokens, localLoss: count > 0 ? lossSum / count : NaN, skippedNonFinite: nonFinite, stopAgreed,
    computeMs: t1 - t0, reduceMs: t2 - t1, updateMs: performance.now() - t2,
  };
}

function nonFiniteError(ctx: StepContext, loss: number, gradNorm: number, localLossSum: number): NonFiniteError {
  const step = ctx.step ?? 0;
  // Only the rank's own loss sum survives the all-reduce: it tells whether this rank's batch diverged.
  const where = ctx.rank === undefined ? '' : ` on rank ${ctx.rank} (its own batch's loss was ${Number.isFinite(localLossSum) ? 'finite: another rank\'s loss or some gradient was not' : String(localLossSum)})`;
  return new NonFiniteError(
    `non-finite training step ${step}${where}: loss ${loss}, gradient norm ${gradNorm}. The model diverged or its weights hold NaN/Inf: ` +
    'lower training.lr or raise warmup_steps, check the base model, or set training.on_nonfinite: skip_step to skip such steps (they are counted)',
    step, ctx.rank);
}
