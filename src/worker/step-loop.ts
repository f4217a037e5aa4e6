/**
 * The worker's training loop: the single-process step plus the ring. Every rank runs the same plan
 * (batch-plan.ts) and takes its contiguous share of each step's examples; gradient sums, loss sum and
 * count are all-reduced, so every rank applies the identical global-mean update. Rank 0 writes
 * checkpoints and the final model; every rank evaluates its share of the eval set and sends the
 * mergeable state to the coordinator, which decides whether training goes on (rankEvalState: the
 * merged shares score exactly the examples a single process scores).
 *
 * Run ids: `LoopContext.runId` names this coordinator session in every message; the checkpoints
 * belong to the run, whose id is the resumed checkpoint's, or for a fresh run this first session's.
 * Rank 0's checkpoints carry the global numbers of every step it trained (src/run/history.ts: the
 * coordinator may have died and missed them).
 */
import { createHash } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { codecs } from '../collective/codecs.ts';
import { ErrorFeedback } from '../collective/error-feedback.ts';
import { allReduceBytesPerRank } from '../collective/ring-allreduce.ts';
import type { GrpcRing } from '../collective/grpc-ring.ts';
import type { CompiledJob } from '../config/compile.ts';
import type { Bus, ControlMessages } from '../control/bus.ts';
import type { Subjects } from '../control/subjects.ts';
import type { Example, ExampleSource } from '../data/dataset.ts';
import type { CachedData } from '../data/prepared-cache.ts';
import { mergeEvalStates, type EvalState } from '../eval/eval-state.ts';
import { saveTrained } from '../model/peft.ts';
import type { Model } from '../model/model.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import type { ScheduleConfig } from '../optim/lr-schedule.ts';
import type { HistoryLine } from '../run/history.ts';
import { finalModelDir } from '../run/outputs.ts';
import type { Resender } from './resender.ts';
import { trainerState } from '../run/trainer-state.ts';
import { BatchPlan } from '../train/batch-plan.ts';
import type { ActivitySink } from '../train/activity.ts';
import { saveCheckpoint } from '../train/checkpoint.ts';
import { evalState, type GenerationOptions } from '../train/evaluate.ts';
import type { FlatParams } from '../train/flat-params.ts';
import { evaluatedCount, prepareCachedRun } from '../train/prepare.ts';
import { setupTraining } from '../train/setup.ts';
import { runPlannedSteps } from '../train/step-runner.ts';
import type { StepReport } from '../train/train-step.ts';

export interface WorkerState {
  job: CompiledJob;
  model: Model;
  flat: FlatParams;
  optimizer: Optimizer;
  plan: BatchPlan;
  schedule: ScheduleConfig;
  /** Both splits stay in the prepared-dataset cache: each step reads this rank's share, each evaluation its range of eval. */
  data: CachedData;
  labels?: string[];
  padId: number;
  generation?: GenerationOptions;
  startStep: number;
  early?: { best: number; badEvals: number };
  /** The run id of the checkpoint resumed from ('' for a fresh run or a checkpoint without one). */
  resumedRunId: string;
  /**
   * The global numbers of every step trained here, kept by every rank (not only rank 0): after an
   * elastic re-form any rank may become rank 0 and write checkpoints carrying them.
   */
  trained?: HistoryLine[];
}

export interface WorkerEvents {
  step?: (r: StepReport & { step: number; samples: number; reduceBytes: number }) => void;
  checkpoint?: (r: { step: number; seconds: number; path: string }) => void;
}

export async function prepareWorkerState(job: CompiledJob, resumeFrom?: string): Promise<WorkerState> {
  const { data, labels, padId, generation } = await prepareCachedRun(job);
  const setup = await setupTraining(job, data, resumeFrom);
  return { job, data, labels, padId, generation, ...setup, early: setup.restored?.earlyStopping, resumedRunId: setup.restored?.runId ?? '' };
}

/** First 16 hex digits of sha256 over the parameter bytes: equal on every rank or the replicas diverged. */
export function paramHash(params: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest('hex').slice(0, 16);
}

export interface LoopContext {
  job: CompiledJob;
  rank: number;
  worldSize: number;
  runId: string;
  ring: GrpcRing;
  bus: Bus;
  subj: Subjects;
  /** Reports go through it: re-sent until the coordinator's answer acknowledges them (resender.ts). */
  reports: Resender;
  waitForDecision: (step: number) => Promise<NonNullable<ControlMessages['Control']['evalDecision']>>;
  onStep: (step: number) => void;
  events?: WorkerEvents;
  isAborted: () => string | undefined;
  /** This rank's vote to stop after the current step (a signal, or Control.stop from the coordinator). */
  stopVote?: () => boolean;
  /** Told what this rank is doing as it changes (the heartbeat thread reports it). */
  activity?: ActivitySink;
  /** Appends {rank, step, examples} per step: which examples this rank trained on (debugging, tests). */
  traceFile?: string;
  /** The ring epoch (0 until the first elastic re-form): carried by every report. */
  epoch?: number;
  /**
   * Elastic scale-up: this rank's vote to stop after the current step for a re-form (Control.reform
   * at_boundary). Travels with stopVote in the all-reduce; runSteps then returns `reformAt`.
   */
  reformVote?: () => boolean;
  /** Evaluate before the first step (a re-form plan: the evaluation due after its target step was abandoned). */
  evaluateFirst?: boolean;
}

/**
 * Rank `rank`'s part of an evaluation, to be merged with the other ranks' (mergeEvalStates). Loss and
 * classification: its share of the first evaluatedCount examples, cut to eval.max_batches before sharding, so the
 * ranks together score exactly the single-process examples. Generation: ceil(maxExamples / world)
 * prompts from its shard of the whole eval set, as before.
 */
export async function rankEvalState(
  model: Model, job: CompiledJob, evalSet: ExampleSource<Example>, padId: number, rank: number, worldSize: number, generation?: GenerationOptions,
): Promise<EvalState> {
  const mb = job.training.microBatch;
  // Only this rank's ranges are read (from disk, for a cached split): the same shares as BatchPlan.shard.
  const scored = evalSet.slice(...BatchPlan.shardBounds(evaluatedCount(job, evalSet.length), rank, worldSize));
  const gen = generation && { ...generation, maxExamples: Math.ceil(generation.maxExamples / worldSize) };
  if (!gen || job.eval.maxBatches === undefined) return evalState(model, scored, mb, padId, undefined, gen);
  // The two example sets differ: score one without generating, generate from the other without scoring.
  const scoredState = await evalState(model, scored, mb, padId, undefined, { ...gen, maxExamples: 0 });
  const generated = await evalState(model, evalSet.slice(...BatchPlan.shardBounds(evalSet.length, rank, worldSize)), mb, padId, 0, gen);
  return mergeEvalStates(scoredState, generated);
}

/** Runs the steps; returns the final model directory on rank 0. */
export interface StepsOutcome {
  /** Rank 0: the final model's directory (absent when the run was stopped). */
  finalModelDir?: string;
  /** Stopped by a signal / the coordinator after this step (every rank the same), with rank 0's checkpoint. */
  stopped?: { step: number; checkpoint?: string };
  /** Stopped after this step (every rank the same) for an elastic re-form (the vote was reformVote's). */
  votedOut?: { step: number };
}

/** Runs the steps; rank 0 writes the final model (or, when stopped, a checkpoint if checkpointing is on). */
export async function runSteps(st: WorkerState, c: LoopContext): Promise<StepsOutcome> {
  const { job, model, flat, plan } = st;
  const t = job.training;
  // fp16 feeds each rank's rounding errors into its next gradient (the loss sum / count after the
  // gradient are not fed back); per ring: a re-formed ring calls runSteps again and starts from zero.
  const feedback = job.cluster.codec === 'fp16' ? new ErrorFeedback(flat.grads.length) : null;
  // The extras (loss sum, count, stop votes) are summed exactly under every codec: they travel in fp32.
  const exactTail = flat.extras.length;
  const reduceBytes = allReduceBytesPerRank(flat.reduceBuffer.length, c.worldSize, codecs[job.cluster.codec], exactTail);
  let step = st.startStep;
  const runId = st.resumedRunId || c.runId;
  const trained = (st.trained ??= []);
  const epoch = c.epoch ?? 0;

  let lastCheckpoint: { step: number; path: string } | undefined;
  const checkpoint = async (): Promise<string> => {
    const t0 = performance.now();
    const state = trainerState(step, plan.stepsPerEpoch, { runId, seed: t.seed, schedule: st.schedule, labels: st.labels, earlyStopping: st.early });
    const path = await saveCheckpoint(job.checkpoint.dir, { state, history: trained, keep: job.checkpoint.keep, tokenizerFrom: job.modelDir }, st);
    lastCheckpoint = { step, path };
    c.events?.checkpoint?.({ step, seconds: (performance.now() - t0) / 1000, path });
    const report = { runId: c.runId, step, path };
    c.reports.send(`ckpt:${step}`, () => c.bus.publish(c.subj.checkpoint, 'CheckpointReport', report), step);
    return path;
  };

  const evaluate = async (): Promise<boolean> => {
    if (st.data.eval.length === 0) return false;
    const state = await rankEvalState(model, job, st.data.eval, st.padId, c.rank, c.worldSize, st.generation);
    const at = step;
    const report = { runId: c.runId, rank: c.rank, step: at, stateJson: JSON.stringify(state), epoch };
    c.reports.send(`eval:${at}`, () => c.bus.publish(c.subj.eval, 'EvalReport', report));
    const d = await c.waitForDecision(at);
    st.early = { best: d.best, badEvals: d.badEvals };
    return d.stop;
  };

  let stopFirst = false;
  if (step === 0 || c.evaluateFirst) {
    c.activity?.('evaluation', step);
    stopFirst = (await evaluate()) && step > 0; // the base evaluation decides nothing
  }
  const run = stopFirst ? { step, stoppedEarly: true, interrupted: false } : await runPlannedSteps(job, st, st.data.train, st.padId, step, {
    rank: c.rank,
    shard: (indices) => BatchPlan.shard(indices, c.rank, c.worldSize),
    allReduce: (buf, collective) => {
      const reduce = () => c.ring.allReduce(buf, { step: collective, op: 'sum', codec: job.cluster.codec, timeoutMs: job.cluster.collectiveTimeoutMs, exactTail });
      return feedback ? feedback.around(buf, reduce) : reduce();
    },
    beforeStep: async (s, mine) => {
      if (c.traceFile) await appendFile(c.traceFile, JSON.stringify({ rank: c.rank, step: s + 1, epoch: plan.epochOf(s), ringEpoch: epoch, examples: mine.map((e) => e.source) }) + '\n');
    },
    onStep: async (s, r, lr, samples) => {
      step = s;
      c.onStep(step);
      const hash = job.cluster.hashEveryNSteps > 0 && step % job.cluster.hashEveryNSteps === 0 ? paramHash(flat.params) : '';
      const report = {
        runId: c.runId, rank: c.rank, step, loss: r.loss, count: r.count, gradNorm: r.gradNorm, lr, inputTokens: r.inputTokens,
        samples, computeMs: r.computeMs, reduceMs: r.reduceMs, paramHash: hash, reduceBytes, epoch,
      };
      c.reports.send(`step:${step}`, () => c.bus.publish(c.subj.step, 'StepReport', report), step);
      c.events?.step?.({ ...r, step, samples, reduceBytes });
      trained.push({ type: 'train', step, loss: r.loss, lr, grad_norm: r.gradNorm, count: r.count });
    },
    evaluate,
    checkpoint: c.rank !== 0 ? undefined : async () => { await checkpoint(); },
    stopVote: c.reformVote ? () => !!(c.stopVote?.() || c.reformVote?.()) : c.stopVote,
    activity: c.activity,
  });
  // Stopped for a re-form (at_boundary) this rank voted for, and not also asked to stop: no checkpoint, no final model.
  if (run.interrupted && c.reformVote?.() && !c.stopVote?.()) return { votedOut: { step } };
  if (run.interrupted) {
    // Every rank stopped after the same step (the vote travelled in its all-reduce).
    let path = lastCheckpoint?.step === step ? lastCheckpoint.path : undefined;
    if (c.rank === 0 && !path && job.checkpoint.everyNSteps > 0) {
      c.activity?.('checkpoint', step);
      path = await checkpoint();
    }
    return { stopped: { step, checkpoint: path } };
  }
  const stopped = run.stoppedEarly;
  if (!stopped) {
    c.activity?.('evaluation', step);
    await evaluate();
  }
  if (c.rank !== 0) return {};
  c.activity?.('saving', step);
  const dir = finalModelDir(job.outputDir);
  await saveTrained(model, dir, { baseModel: job.hub ? job.model : job.modelDir, tokenizerFrom: job.modelDir, metadata: { ringtune: `${job.name} step ${step}, ${c.worldSize} workers` } });
  return { finalModelDir: dir };
}
