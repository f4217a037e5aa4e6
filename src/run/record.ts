/**
 * A run's record, as both recipes keep it (the single-process trainer and the coordinator of a
 * distributed run): the history file, the base and latest evaluation, the early-stopping decision
 * (restored from the checkpoint a run resumes from) and, at the end, eval_report.json + report.html.
 * One class so the two cannot drift; it never touches a model.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { ClassificationReport } from '../eval/classification-report.ts';
import type { EvalResult } from '../eval/eval-state.ts';
import { EarlyStopper } from './early-stopping.ts';
import { RunHistory, type HistoryLine } from './history.ts';
import { writeReports } from './report.ts';
import type { TrainerState } from './trainer-state.ts';

/** A completed step's line: the global numbers every recipe has, plus its own (throughput, timing). */
export type TrainLine = { step: number; loss: number; grad_norm: number; count: number } & Record<string, number | string>;

export interface RunEnd {
  steps: number;
  stoppedEarly: boolean;
  data: Record<string, number>;
  finalModelDir: string;
  /** Fields specific to the recipe (run id, worker count), placed after `job`. */
  extra?: Record<string, unknown>;
}

export class RunRecord {
  baseEval?: EvalResult;
  lastEval?: EvalResult;
  /** The latest evaluation's confusion matrix and per-class scores (classifiers; not in metrics.jsonl). */
  lastClassification?: ClassificationReport;
  private readonly started = performance.now();

  private constructor(
    private readonly job: Pick<CompiledJob, 'name' | 'modelDir' | 'task' | 'outputDir'> & Partial<Pick<CompiledJob, 'model' | 'hub'>>,
    readonly history: RunHistory,
    readonly stopper?: EarlyStopper,
  ) {}

  /**
   * Opens the record of `job`, continuing `resumed` (its step and early-stopping state) if given;
   * `carried` are the train lines its checkpoint carries (CheckpointClaim.resumed.history).
   */
  static async open(
    job: Pick<CompiledJob, 'name' | 'modelDir' | 'task' | 'outputDir' | 'eval'> & Partial<Pick<CompiledJob, 'model' | 'hub'>>, resumed?: TrainerState, carried: readonly HistoryLine[] = [],
  ): Promise<RunRecord> {
    const history = await RunHistory.open(job.outputDir, resumed?.step ?? 0, carried);
    const stopper = job.eval.earlyStopping ? new EarlyStopper(job.eval.earlyStopping, resumed?.earlyStopping) : undefined;
    const record = new RunRecord(job, history, stopper);
    // A resumed run's report still shows where the run started: the step-0 evaluation it kept.
    const base = history.lines.find((l) => l.type === 'eval' && l.step === 0);
    if (base) {
      const { type: _t, step: _s, ...result } = base;
      record.baseEval = Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Number(v)]));
    }
    return record;
  }

  get elapsedMs(): number {
    return performance.now() - this.started;
  }

  /**
   * Records a completed step. A step with loss positions whose loss or gradient norm is not finite
   * made no update (train-step.ts: training.on_nonfinite skip_step; with `fail` the run stops before
   * such a step is recorded): its line says so as `skipped_nonfinite: 1`, and the report counts them.
   */
  async train(line: TrainLine): Promise<void> {
    const skipped = line.count > 0 && !(Number.isFinite(line.loss) && Number.isFinite(line.grad_norm));
    await this.history.append({ type: 'train', ...line, ...(skipped ? { skipped_nonfinite: 1 } : {}) });
  }

  /** Steps of this run (resumed ones included) that skipped their update on a non-finite loss or gradient. */
  get skippedNonFinite(): number {
    return this.history.lines.filter((h) => h.type === 'train' && h.skipped_nonfinite === 1).length;
  }

  async eval(step: number, result: EvalResult, classification?: ClassificationReport): Promise<void> {
    if (step === 0) this.baseEval = result;
    this.lastEval = result;
    this.lastClassification = classification;
    await this.history.append({ type: 'eval', step, ...result });
  }

  /**
   * Early stopping after the evaluation at `step`: true stops training. Only evaluations strictly
   * inside the run count (the base evaluation and the final one decide nothing). Throws InputError
   * when the metric it watches is not computed.
   */
  shouldStop(step: number, result: EvalResult, totalSteps: number): boolean {
    if (!this.stopper || step <= 0 || step >= totalSteps) return false;
    return this.stopper.update(result);
  }

  /** What checkpoints store so that a resumed run stops where this one would have. */
  earlyStopping(): { best: number; badEvals: number } | undefined {
    return this.stopper?.state();
  }

  /** eval_report.json and report.html; the final evaluation is the latest one. */
  async finish(end: RunEnd): Promise<EvalResult | undefined> {
    const finalEval = this.lastEval;
    await writeReports(this.job.outputDir, {
      job: this.job.name, ...end.extra, model: this.job.hub ? this.job.model : this.job.modelDir, task: this.job.task, steps: end.steps, stopped_early: end.stoppedEarly,
      skipped_nonfinite_steps: this.skippedNonFinite, data: end.data, base_eval: this.baseEval, final_eval: finalEval, classification: this.lastClassification, seconds: +(this.elapsedMs / 1000).toFixed(1), final_model: end.finalModelDir,
    }, this.history.lines);
    return finalEval;
  }
}
