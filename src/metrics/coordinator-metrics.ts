/**
 * The coordinator's metrics: the run's global numbers, one series per {ringtune_job} (heartbeat ages
 * add a rank). Heartbeat ages and the total step count are read from the coordinator's status at
 * every scrape, so they are never stale.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { RejectReason } from '../control/auth.ts';
import { COORDINATOR_PHASES, type CoordinatorPhase } from '../control/phases.ts';
import { EVAL_KEYS, JOB_LABEL, METRIC_NAMES } from './names.ts';
import { StateGauge, reconnectCounter, rejectCounter, watchReconnects, type StatusSource } from './shared.ts';

export interface CoordinatorStepRecord {
  step: number;
  /** Global mean loss per loss token (or per example, classification) of the step. */
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens fed through the model by all workers, padding included. */
  inputTokens: number;
  samples: number;
}

/** What the coordinator's status says about the run (StatusReply's fields that metrics read). */
export interface RunStatus {
  totalSteps: number;
  workers: ReadonlyArray<{ rank: number; heartbeatAgeMs: number }>;
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly job: string;
  private readonly loss: Gauge<string>;
  private readonly lr: Gauge<string>;
  private readonly gradNorm: Gauge<string>;
  private readonly inputTokens: Counter;
  private readonly samples: Counter;
  private readonly step: Gauge;
  private readonly lastStepTime: Gauge<string>;
  private readonly workersAlive: Gauge;
  private readonly worldSize: Gauge;
  private readonly hashChecks: Counter<'result'>;
  private readonly evalLoss: Gauge<string>;
  private readonly evalPerplexity: Gauge<string>;
  private readonly evalScore: Gauge<string>;
  private readonly evalScored: Gauge<string>;
  private readonly evalRuns: Counter;
  private readonly evalLastStep: Gauge;
  private readonly evalLastTime: Gauge<string>;
  private readonly checkpoints: Counter;
  private readonly checkpointLastStep: Gauge;
  private readonly checkpointLastTime: Gauge<string>;
  private readonly phase: StateGauge;
  private readonly failures: Counter;
  private readonly controlRejectedCounter: Counter<'reason'>;
  private readonly reconnects: Counter;
  private status?: () => RunStatus;

  constructor(labels: { job: string }) {
    this.job = labels.job;
    this.registry.setDefaultLabels({ [JOB_LABEL]: labels.job });
    const registers = [this.registry];
    const N = METRIC_NAMES;
    const firstEvent = { labelNames: [JOB_LABEL], registers }; // no sample before the first event (see WorkerMetrics)
    this.step = new Gauge({ name: N.step, help: 'Last optimizer step completed by every rank', registers });
    const totalSteps: Gauge<string> = new Gauge({
      name: N.totalSteps, help: 'Optimizer steps the run will take (known once the workers loaded the data)', labelNames: [JOB_LABEL], registers,
      collect: () => {
        const total = this.status?.().totalSteps ?? 0;
        if (total > 0) totalSteps.set({ [JOB_LABEL]: this.job }, total);
      },
    });
    this.lastStepTime = new Gauge({ name: N.lastStepTime, help: 'Unix time at which the last step completed on every rank', ...firstEvent });
    this.loss = new Gauge({ name: N.loss, help: 'Global mean loss per loss token of the last step over all workers', ...firstEvent });
    this.lr = new Gauge({ name: N.learningRate, help: 'Learning rate of the last step', ...firstEvent });
    this.gradNorm = new Gauge({ name: N.gradNorm, help: 'Global L2 norm of the gradient before clipping, last step', ...firstEvent });
    this.inputTokens = new Counter({ name: N.inputTokens, help: 'Tokens fed through the model by all workers, padding included', registers });
    this.samples = new Counter({ name: N.samples, help: 'Examples processed by all workers', registers });
    this.workersAlive = new Gauge({ name: N.workersAlive, help: 'Workers whose heartbeats are current', registers });
    this.worldSize = new Gauge({ name: N.worldSize, help: 'Ranks in the ring', registers });
    const heartbeatAge = new Gauge({
      name: N.heartbeatAge, help: "Seconds since the coordinator last heard from each assigned rank (heartbeat or step report)", labelNames: ['rank'], registers,
      collect: () => {
        const workers = this.status?.().workers;
        if (!workers) return;
        heartbeatAge.reset();
        for (const w of workers) if (w.rank >= 0) heartbeatAge.set({ rank: String(w.rank) }, w.heartbeatAgeMs / 1000);
      },
    });
    this.hashChecks = new Counter({ name: N.replicaHashChecks, help: 'Cross-worker parameter hash comparisons by result (match | mismatch)', labelNames: ['result'], registers });
    this.hashChecks.inc({ result: 'match' }, 0);
    this.hashChecks.inc({ result: 'mismatch' }, 0);
    this.evalLoss = new Gauge({ name: N.evalLoss, help: 'Evaluation loss of the latest evaluation (nats per loss token; per example for classification)', ...firstEvent });
    this.evalPerplexity = new Gauge({ name: N.evalPerplexity, help: 'Evaluation perplexity (exp of the eval loss) of the latest evaluation', ...firstEvent });
    this.evalScore = new Gauge({ name: N.evalScore, help: 'Evaluation scores of the latest evaluation as a ratio 0..1 (accuracy, f1_*, rouge*, bleu/100, exact_match/100, token_f1/100)', labelNames: [JOB_LABEL, 'metric'], registers });
    this.evalScored = new Gauge({ name: N.evalScored, help: 'What the latest evaluation scored: tokens, examples or generated completions', labelNames: [JOB_LABEL, 'unit'], registers });
    this.evalRuns = new Counter({ name: N.evalRuns, help: 'Completed evaluation runs', registers });
    this.evalLastStep = new Gauge({ name: N.evalLastStep, help: 'Step of the latest evaluation', registers });
    this.evalLastTime = new Gauge({ name: N.evalLastTime, help: 'Unix time of the latest evaluation', ...firstEvent });
    this.checkpoints = new Counter({ name: N.checkpoints, help: 'Checkpoints written', registers });
    this.checkpointLastStep = new Gauge({ name: N.checkpointLastStep, help: 'Step of the latest checkpoint written', registers });
    this.checkpointLastTime = new Gauge({ name: N.checkpointLastTime, help: 'Unix time at which the coordinator heard of the latest checkpoint', ...firstEvent });
    this.phase = new StateGauge(
      new Gauge({ name: N.phase, help: 'Coordinator phase: 1 for the current phase, 0 for the others', labelNames: ['phase'], registers }),
      'phase',
      COORDINATOR_PHASES,
    );
    this.phase.set('waiting-for-workers'); // where a coordinator starts (it reports no transition into it)
    this.failures = new Counter({ name: N.runFailures, help: 'Times the run failed (the coordinator aborted it)', registers });
    this.controlRejectedCounter = rejectCounter(N.controlRejected, 'Control messages the coordinator dropped, by reason (auth.ts REJECT_REASONS)', registers);
    this.reconnects = reconnectCounter(N.natsReconnects, registers);
    collectDefaultMetrics({ register: this.registry }); // stock names (see WorkerMetrics)
  }

  /** Where the heartbeat ages and the total step count are read at each scrape. */
  statusFrom(status: () => RunStatus): void {
    this.status = status;
  }

  natsFrom(source: StatusSource): void {
    watchReconnects(source, () => this.reconnects.inc());
  }

  setWorkersAlive(n: number): void {
    this.workersAlive.set(n);
  }

  setWorldSize(n: number): void {
    this.worldSize.set(n);
  }

  observeStep(r: CoordinatorStepRecord): void {
    const job = { [JOB_LABEL]: this.job };
    this.step.set(r.step);
    this.lastStepTime.set(job, Date.now() / 1000);
    if (Number.isFinite(r.loss)) this.loss.set(job, r.loss);
    this.lr.set(job, r.lr);
    if (Number.isFinite(r.gradNorm)) this.gradNorm.set(job, r.gradNorm);
    this.inputTokens.inc(r.inputTokens);
    this.samples.inc(r.samples);
  }

  replicaHashCheck(ok: boolean): void {
    this.hashChecks.inc({ result: ok ? 'match' : 'mismatch' });
  }

  /** An evaluation's results by key (src/eval): each into the gauge of its unit (EVAL_KEYS); unknown keys are not exported. */
  observeEval(step: number, results: Record<string, number>): void {
    const job = { [JOB_LABEL]: this.job };
    for (const [key, value] of Object.entries(results)) {
      const to = EVAL_KEYS[key];
      if (!to || !Number.isFinite(value)) continue;
      if (to.kind === 'loss') this.evalLoss.set(job, value);
      else if (to.kind === 'perplexity') this.evalPerplexity.set(job, value);
      else if (to.kind === 'score') this.evalScore.set({ ...job, metric: key }, value * (to.scale ?? 1));
      else this.evalScored.set({ ...job, unit: key }, value);
    }
    this.evalLastStep.set(step);
    this.evalLastTime.set(job, Date.now() / 1000);
    this.evalRuns.inc();
  }

  checkpointWritten(step: number): void {
    this.checkpointLastStep.set(step);
    this.checkpointLastTime.set({ [JOB_LABEL]: this.job }, Date.now() / 1000);
    this.checkpoints.inc();
  }

  controlRejected(reason: RejectReason): void {
    this.controlRejectedCounter.inc({ reason });
  }

  setPhase(phase: CoordinatorPhase): void {
    this.phase.set(phase);
    if (phase === 'failed') this.failures.inc();
  }
}
