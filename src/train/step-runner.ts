/**
 * The step schedule both trainers follow (single process and ring worker), so they cannot drift:
 * for each step of the plan, take this rank's share of the step's examples, train (all-reducing when a
 * ring is given), report, evaluate when due (it may stop training early), checkpoint when due.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { ExampleSource } from '../data/dataset.ts';
import type { ClsExample, LmExample } from '../data/examples.ts';
import { learningRate } from '../optim/lr-schedule.ts';
import type { ActivitySink } from './activity.ts';
import { BatchPlan } from './batch-plan.ts';
import { collateCls, collateLm } from '../data/batch.ts';
import type { Model } from '../model/model.ts';
import type { TrainingSetup } from './setup.ts';
import { trainStep, type Batch, type StepReport } from './train-step.ts';

export function makeBatch(model: Model, examples: readonly (LmExample | ClsExample)[], padId: number): Batch {
  return model.task === 'classification' ? collateCls(examples as ClsExample[], padId) : collateLm(examples as LmExample[], padId);
}

export interface StepHooks {
  /** This worker's rank in a ring (named by a NonFiniteError); absent on one process. */
  rank?: number;
  /** This rank's share of a step's example indices (all of them on one process). */
  shard: (indices: number[]) => number[];
  /** Sums the buffer across ranks; `collective` is the ring's sequence number. */
  allReduce?: (buffer: Float32Array, collective: number) => Promise<void>;
  beforeStep?: (step: number, examples: ReadonlyArray<LmExample | ClsExample>) => Promise<void>;
  /** After step `step` (1-based) finished: report it. */
  onStep: (step: number, r: StepReport, lr: number, samples: number) => Promise<void>;
  /** An evaluation is due after `step`; true stops training. */
  evaluate: (step: number) => Promise<boolean>;
  /** A checkpoint is due after `step`; absent on processes that do not write checkpoints. */
  checkpoint?: (step: number) => Promise<void>;
  /** Last thing in each iteration (tests interrupt runs here). */
  afterStep?: (step: number) => Promise<void> | void;
  /** Asked before each step: true ends training there (a signal asked to stop; the step in flight finished). */
  stopRequested?: () => boolean;
  /**
   * Distributed runs: this rank's vote, carried in the step's all-reduce; training ends after the
   * first step in which any rank voted (the same step everywhere), with a checkpoint when due.
   */
  stopVote?: () => boolean;
  /** Told what the trainer is doing as it changes (a worker's heartbeats report it). */
  activity?: ActivitySink;
}

export async function runPlannedSteps(
  job: CompiledJob, s: TrainingSetup, train: ExampleSource<LmExample | ClsExample>, padId: number, startStep: number, h: StepHooks,
): Promise<{ step: number; stoppedEarly: boolean; interrupted: boolean }> {
  const t = job.training;
  let step = startStep;
  let stoppedEarly = false;
  let interrupted = false;
  while (step < s.plan.totalSteps && !stoppedEarly && !(interrupted = h.stopRequested?.() ?? false)) {
    const indices = h.shard(s.plan.stepExamples(step));
    const mine = indices.map((i) => train.at(i)!); // a cached split reads just these examples from disk
    await h.beforeStep?.(step, mine);
    const micro = BatchPlan.chunks(mine, t.microBatch).map((ex) => makeBatch(s.model, ex, padId));
    const examples = BatchPlan.chunks(indices, t.microBatch); // each micro-batch's global example indices (LoRA dropout masks)
    const lr = learningRate(s.schedule, step);
    const collective = step + 1;
    const reduce = h.allReduce;
    const r = await trainStep(
      {
        model: s.model, flat: s.flat, optimizer: s.optimizer, gradClip: t.gradClip, allReduce: reduce && ((buf) => reduce(buf, collective)),
        onNonFinite: t.onNonFinite, step: step + 1, rank: h.rank, seed: t.seed, examples, stopVote: h.stopVote, activity: h.activity,
      },
      micro, lr,
    );
    step += 1;
    h.activity?.('idle', step);
    await h.onStep(step, r, lr, mine.length);
    if (job.eval.everyNSteps > 0 && step % job.eval.everyNSteps === 0 && step < s.plan.totalSteps) {
      h.activity?.('evaluation', step);
      stoppedEarly = await h.evaluate(step);
    }
    if (h.checkpoint && job.checkpoint.everyNSteps > 0 && step % job.checkpoint.everyNSteps === 0) {
      h.activity?.('checkpoint', step);
      await h.checkpoint(step);
    }
    h.activity?.('idle', step);
    await h.afterStep?.(step);
    if (r.stopAgreed && h.stopVote) {
      interrupted = true;
      break;
    }
  }
  return { step, stoppedEarly, interrupted };
}
