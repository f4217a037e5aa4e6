/**
 * The single-process fine-tuning recipe, top to bottom:
 *   load tokenizer, data (all validation before any output is touched) and model
 *   -> resume from the latest checkpoint if asked -> evaluate the starting point
 *   -> steps (batch plan -> train step -> history) with eval, early stopping and checkpoints
 *   -> final model (Hugging Face format), metrics.jsonl, eval_report.json, report.html
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import type { CompiledJob } from '../config/compile.ts';
import { prepareData, type PreparedData } from '../data/dataset.ts';
import { InputError } from '../errors.ts';
import { readConfigJson, saveModel } from '../model/model-dir.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { GenerationOptions } from './generation-eval.ts';
import { latestCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.ts';
import { setupTraining } from './setup.ts';
import { evalResult, evalState, type EvalResult } from './evaluate.ts';
import { EarlyStopper } from './early-stopping.ts';
import { readHistory, writeReports, type HistoryLine } from './report.ts';
import { runPlannedSteps } from './step-runner.ts';

export interface TrainOptions {
  resume?: boolean;
  /** Start over even if checkpoints exist (they are replaced as new ones are written). */
  overwrite?: boolean;
  progress?: boolean;
  log?: (line: string) => void;
  /** Called after each completed step (and its checkpoint); tests use it to interrupt a run. */
  onStep?: (step: number) => void | Promise<void>;
}

export interface TrainResult {
  steps: number;
  baseEval?: EvalResult;
  finalEval?: EvalResult;
  stoppedEarly: boolean;
  history: HistoryLine[];
  data: { train: number; eval: number; skipped: number };
  finalModelDir: string;
}


/** Loads everything a run needs and validates it; writes nothing. */
export interface PreparedRun {
  tok: Tokenizer;
  data: PreparedData;
  labels?: string[];
  padId: number;
  /** Options for generation metrics (eval.metrics bleu/rouge/exact_match), when asked for. */
  generation?: GenerationOptions;
}

export async function prepareRun(job: CompiledJob): Promise<PreparedRun> {
  const tok = await Tokenizer.fromDir(job.modelDir);
  const cfg = await readConfigJson(job.modelDir);
  const modelLabels = cfg.id2label ? Object.values(cfg.id2label as Record<string, string>) : undefined;
  const data = await prepareData(job, tok, job.task === 'classification' ? modelLabels : undefined);
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const generation: GenerationOptions | undefined = job.eval.generationMetrics.length ? {
    metrics: job.eval.generationMetrics, maxNewTokens: job.eval.generateMaxTokens, maxExamples: job.eval.generateMaxExamples,
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }), stopIds: [tok.eosTokenId].filter((x): x is number => x !== undefined),
  } : undefined;
  return { tok, data, labels: data.labels, padId, generation };
}

export async function train(job: CompiledJob, o: TrainOptions = {}): Promise<TrainResult> {
  const log = o.log ?? ((line: string) => console.error(line));
  const { data, labels, padId, generation } = await prepareRun(job);
  const ckpt = o.resume ? await latestCheckpoint(job.checkpoint.dir) : undefined;
  if (o.resume && !ckpt) throw new InputError(`--resume: no checkpoint in ${job.checkpoint.dir} (its "latest" file is missing)`);
  if (!o.resume && !o.overwrite && (await latestCheckpoint(job.checkpoint.dir))) {
    throw new InputError(`${job.checkpoint.dir} already holds checkpoints: pass --resume to continue that run or --overwrite to start over`);
  }
  const t = job.training;
  const setup = await setupTraining(job, data, ckpt);
  const { model, flat, optimizer, plan, schedule, startStep, restored } = setup;
  let step = startStep;
  const stopper = job.eval.earlyStopping && new EarlyStopper(job.eval.earlyStopping, restored?.earlyStopping);

  await mkdir(job.outputDir, { recursive: true });
  const historyFile = join(job.outputDir, 'metrics.jsonl');
  const history = await readHistory(historyFile, step);
  await writeFileAtomic(historyFile, history.map((h) => JSON.stringify(h) + '\n').join(''));
  const record = async (h: HistoryLine) => {
    history.push(h);
    await appendFile(historyFile, JSON.stringify(h) + '\n');
  };
  const runEval = async (): Promise<EvalResult | undefined> => {
    if (data.eval.length === 0) return undefined;
    const r = evalResult(await evalState(model, data.eval, t.microBatch, padId, job.eval.maxBatches, generation));
    await record({ type: 'eval', step, ...r });
    return r;
  };
  log(`[ringtune] ${job.name}: ${data.train.length} train / ${data.eval.length} eval examples` +
    `${data.skipped.length ? ` (${data.skipped.length} bad records skipped)` : ''}, ${plan.totalSteps} steps of ${t.globalBatch}, ${(model.numParams / 1e6).toFixed(2)}M parameters`);
  const baseEval = step === 0 ? await runEval() : undefined;
  if (baseEval) log(`[ringtune] step 0 eval: ${fmt(baseEval)}`);

  const state = (): TrainerState => ({
    step, epoch: plan.epochOf(step), stepInEpoch: step % plan.stepsPerEpoch, seed: t.seed, schedule, labels,
    earlyStopping: stopper?.state(),
  });
  const bar = o.progress ?? process.stderr.isTTY ? new cliProgress.SingleBar({
    format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true,
  }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(plan.totalSteps, step, { loss: '-', tps: '-' });
  let lastEval: EvalResult | undefined;
  const started = performance.now();
  const run = await runPlannedSteps(job, setup, data.train, padId, step, {
    shard: (indices) => indices,
    onStep: async (s, r, lr) => {
      step = s;
      const tps = r.inputTokens / ((r.computeMs + r.reduceMs) / 1000);
      await record({ type: 'train', step, epoch: plan.epochOf(step - 1), loss: r.loss, lr, grad_norm: r.gradNorm, count: r.count, tokens_per_s: Math.round(tps) });
      bar?.update(step, { loss: r.loss.toFixed(4), tps: Math.round(tps) });
      if (!bar && (step % 10 === 0 || step === plan.totalSteps)) log(`[ringtune] step ${step}/${plan.totalSteps} loss ${r.loss.toFixed(4)} lr ${lr.toExponential(2)} ${Math.round(tps)} tok/s`);
    },
    evaluate: async () => {
      lastEval = await runEval();
      return !!(lastEval && stopper?.update(lastEval));
    },
    checkpoint: async () => {
      await saveCheckpoint(job.checkpoint.dir, state(), flat, optimizer, model, job.checkpoint.keep, job.modelDir);
    },
    afterStep: o.onStep,
  });
  const stoppedEarly = run.stoppedEarly;
  bar?.stop();
  // After an early stop the last eval is already the final one.
  const finalEval = stoppedEarly ? lastEval : await runEval();
  if (finalEval) log(`[ringtune] step ${step} eval: ${fmt(finalEval)}${stoppedEarly ? ' (stopped early)' : ''}`);
  const finalModelDir = join(job.outputDir, 'final');
  await saveModel(model, finalModelDir, { tokenizerFrom: job.modelDir, metadata: { ringtune: `${job.name} step ${step}` } });
  const summary = {
    job: job.name, model: job.modelDir, task: job.task, steps: step, stopped_early: stoppedEarly,
    data: { train: data.train.length, eval: data.eval.length, skipped_bad_records: data.skipped.length },
    base_eval: baseEval, final_eval: finalEval, seconds: +((performance.now() - started) / 1000).toFixed(1), final_model: finalModelDir,
  };
  await writeReports(job.outputDir, summary, history);
  model.dispose();
  const sizes = { train: data.train.length, eval: data.eval.length, skipped: data.skipped.length };
  return { steps: step, baseEval, finalEval, stoppedEarly, history, data: sizes, finalModelDir };
}

function fmt(r: EvalResult): string {
  return Object.entries(r).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
}
