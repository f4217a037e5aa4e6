/**
 * The single-process fine-tuning recipe, top to bottom:
 *   load tokenizer, data (all validation before any output is touched) and model
 *   -> claim the checkpoint directory (refuse another run's checkpoints, resume the latest if asked)
 *   -> evaluate the starting point
 *   -> steps (batch plan -> train step -> history) with eval, early stopping and checkpoints
 *   -> final model (Hugging Face format; LoRA: the adapter in PEFT's layout), metrics.jsonl, eval_report.json, report.html
 * Building blocks: prepare.ts, setup.ts, step-runner.ts, evaluate.ts, checkpoint.ts (this folder);
 * the run's record (history, early stopping, reports): src/run/. The worker recipe
 * (src/worker/step-loop.ts) is built from the same blocks.
 */
import cliProgress from 'cli-progress';
import type { CompiledJob } from '../config/compile.ts';
import { classificationReport } from '../eval/classification-report.ts';
import { evalResult, type EvalResult } from '../eval/eval-state.ts';
import { saveTrained } from '../model/peft.ts';
import { claimCheckpointDir } from '../run/checkpoint-dir.ts';
import type { HistoryLine } from '../run/history.ts';
import { finalModelDir as finalDirOf } from '../run/outputs.ts';
import { RunRecord } from '../run/record.ts';
import { trainerState } from '../run/trainer-state.ts';
import { saveCheckpoint } from './checkpoint.ts';
import { evalState } from './evaluate.ts';
import { prepareCachedRun } from './prepare.ts';
import { checkTraining, setupTraining } from './setup.ts';
import { runPlannedSteps } from './step-runner.ts';

export interface TrainOptions {
  /** Continue the run whose checkpoint `latest` names (its run id, history and step). */
  resume?: boolean;
  /** Start over even if checkpoints exist: they are removed once the job's inputs have been validated. */
  overwrite?: boolean;
  progress?: boolean;
  log?: (line: string) => void;
  /** Called after each completed step (and its checkpoint); tests use it to interrupt a run. */
  onStep?: (step: number) => void | Promise<void>;
  /**
   * Aborted (reason: the signal's name, e.g. 'SIGTERM') = stop after the step in flight, write a
   * checkpoint when checkpointing is on, and return with `stoppedBy` set; no final model or report.
   */
  stop?: AbortSignal;
}

export interface TrainResult {
  steps: number;
  baseEval?: EvalResult;
  finalEval?: EvalResult;
  stoppedEarly: boolean;
  history: HistoryLine[];
  data: { train: number; eval: number; skipped: number };
  finalModelDir: string;
  /** Set when `stop` ended the run early: the reason (signal name) and the checkpoint to resume from, if any. */
  stoppedBy?: { reason: string; checkpoint?: string };
}

export async function train(job: CompiledJob, o: TrainOptions = {}): Promise<TrainResult> {
  const log = o.log ?? ((line: string) => console.error(line));
  const { data, labels, padId, generation } = await prepareCachedRun(job);
  // Evaluation reads the cached eval split one micro-batch at a time (as ranks read their shares):
  // only the first evaluatedCount examples (eval.max_batches), never the whole split in memory.
  const evalSet = data.eval;
  await checkTraining(job, data); // every check before --overwrite may clear old checkpoints
  const { runId, resumed } = await claimCheckpointDir(job.checkpoint.dir, { resume: o.resume, overwrite: o.overwrite, outputDir: job.outputDir });
  if (resumed) log(`[ringtune] resuming from step ${resumed.state.step} (checkpoint ${resumed.checkpoint})`);
  const t = job.training;
  const setup = await setupTraining(job, data, resumed?.checkpoint);
  const { model, plan, schedule, startStep, restored } = setup;
  let step = startStep;
  const record = await RunRecord.open(job, restored, resumed?.history);

  const runEval = async (): Promise<EvalResult | undefined> => {
    if (evalSet.length === 0) return undefined;
    const state = await evalState(model, evalSet, t.microBatch, padId, job.eval.maxBatches, generation);
    const r = evalResult(state);
    await record.eval(step, r, classificationReport(state, model.config.id2label));
    return r;
  };
  log(`[ringtune] ${job.name}: ${data.train.length} train / ${data.eval.length} eval examples` +
    `${data.skipped.length ? ` (${data.skipped.length} bad records skipped)` : ''}, ${plan.totalSteps} steps of ${t.globalBatch}, ${(model.numParams / 1e6).toFixed(2)}M parameters` +
    `${model.adapter ? ` (LoRA r ${model.adapter.lora.r}: ${model.adapter.numParams} trainable)` : ''}`);
  // A resumed run keeps the step-0 evaluation its history holds (RunRecord.open restores it).
  const baseEval = step === 0 ? await runEval() : record.baseEval;
  if (baseEval && step === 0) log(`[ringtune] step 0 eval: ${fmt(baseEval)}`);

  const bar = o.progress ?? process.stderr.isTTY ? new cliProgress.SingleBar({
    format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true,
  }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(plan.totalSteps, step, { loss: '-', tps: '-' });
  let checkpointed: { step: number; path: string } | undefined = resumed && { step, path: resumed.checkpoint };
  async function checkpoint(): Promise<void> {
    const state = trainerState(step, plan.stepsPerEpoch, { runId, seed: t.seed, schedule, labels, earlyStopping: record.earlyStopping() });
    const path = await saveCheckpoint(job.checkpoint.dir, { state, history: record.history.lines, keep: job.checkpoint.keep, tokenizerFrom: job.modelDir }, setup);
    checkpointed = { step, path };
  }
  // Stopped by a signal: the newest checkpoint of this run, written now unless the step just took one.
  async function checkpointOnStop(): Promise<string | undefined> {
    if (job.checkpoint.everyNSteps === 0) return undefined;
    if (checkpointed?.step !== step && step > 0) await checkpoint();
    return checkpointed?.path;
  }
  const run = await runPlannedSteps(job, setup, data.train, padId, step, {
    shard: (indices) => indices,
    onStep: async (s, r, lr) => {
      step = s;
      const tps = r.inputTokens / ((r.computeMs + r.reduceMs) / 1000);
      await record.train({ step, epoch: plan.epochOf(step - 1), loss: r.loss, lr, grad_norm: r.gradNorm, count: r.count, tokens_per_s: Math.round(tps) });
      if (r.skippedNonFinite) log(`[ringtune] step ${step}: loss ${r.loss}, gradient norm ${r.gradNorm}: update skipped (training.on_nonfinite: skip_step)`);
      bar?.update(step, { loss: r.loss.toFixed(4), tps: Math.round(tps) });
      if (!bar && (step % 10 === 0 || step === plan.totalSteps)) log(`[ringtune] step ${step}/${plan.totalSteps} loss ${r.loss.toFixed(4)} lr ${lr.toExponential(2)} ${Math.round(tps)} tok/s`);
    },
    evaluate: async (s) => {
      const r = await runEval();
      return !!r && record.shouldStop(s, r, plan.totalSteps);
    },
    checkpoint,
    afterStep: o.onStep,
    stopRequested: () => o.stop?.aborted ?? false,
  });
  const stoppedEarly = run.stoppedEarly;
  bar?.stop();
  if (run.interrupted) {
    const stoppedBy = { reason: String(o.stop?.reason ?? 'stop'), checkpoint: await checkpointOnStop() };
    const resume = stoppedBy.checkpoint ? `checkpoint ${stoppedBy.checkpoint}; resume with --resume`
      : job.checkpoint.everyNSteps > 0 ? 'no checkpoint written yet (no step completed); start again to train'
      : 'no checkpoint (checkpoint.every_n_steps is 0): this run cannot be resumed';
    log(`[ringtune] stopped by ${stoppedBy.reason} at step ${step}; ${resume}`);
    model.dispose();
    const sizes = { train: data.train.length, eval: data.eval.length, skipped: data.skipped.length };
    return { steps: step, baseEval, stoppedEarly: false, history: record.history.lines, data: sizes, finalModelDir: finalDirOf(job.outputDir), stoppedBy };
  }
  // After an early stop the last eval is already the final one.
  if (!stoppedEarly) await runEval();
  const finalModelDir = finalDirOf(job.outputDir);
  await saveTrained(model, finalModelDir, { baseModel: job.hub ? job.model : job.modelDir, tokenizerFrom: job.modelDir, metadata: { ringtune: `${job.name} step ${step}` } });
  const finalEval = await record.finish({
    steps: step, stoppedEarly, finalModelDir, data: { train: data.train.length, eval: data.eval.length, skipped_bad_records: data.skipped.length },
  });
  if (finalEval) log(`[ringtune] step ${step} eval: ${fmt(finalEval)}${stoppedEarly ? ' (stopped early)' : ''}`);
  if (record.skippedNonFinite) log(`[ringtune] ${record.skippedNonFinite} step(s) skipped on a non-finite loss or gradient (metrics.jsonl: skipped_nonfinite)`);
  model.dispose();
  const sizes = { train: data.train.length, eval: data.eval.length, skipped: data.skipped.length };
  return { steps: step, baseEval, finalEval, stoppedEarly, history: record.history.lines, data: sizes, finalModelDir };
}

function fmt(r: EvalResult): string {
  return Object.entries(r).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
}
