/**
 * A worker's metrics: its own numbers, one series per {ringtune_job, rank}. The rank is a default
 * label of the registry, added at exposition time, so `setRank()` after assignment relabels every
 * series at once without resetting counters; before assignment the series carry no rank label at all
 * (a `rank="-1"` series would be a separate time series that dashboards sum with the real ones).
 */
import { stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RejectReason } from '../control/auth.ts';
import { WORKER_PHASES, type WorkerPhase } from '../control/phases.ts';
import { CHECKPOINT_BUCKETS_SECONDS, DURATION_BUCKETS_SECONDS, JOB_LABEL, METRIC_NAMES } from './names.ts';
import { StateGauge, rejectCounter, reconnectCounter, watchReconnects, type StatusSource } from './shared.ts';

export interface WorkerStepRecord {
  step: number;
  /** This rank's own mean loss per loss token (its micro-batches' loss sum / count before the all-reduce); NaN when it had none. */
  localLoss: number;
  lr: number;
  /** Global L2 norm of the all-reduced gradient before clipping (the same on every rank). */
  gradNorm: number;
  /** Tokens this worker fed through the model, padding included (B x T summed over its micro-batches). */
  inputTokens: number;
  samples: number;
  /** Forward + backward + all-reduce + optimizer update. */
  stepSeconds: number;
  allreduceSeconds: number;
  /** Bytes this worker sent during the step's all-reduce (2(N-1)/N x gradient bytes). */
  allreduceBytes: number;
  /** The step's loss or gradient was not finite and on_nonfinite is skip_step: nothing was updated. */
  skippedNonFinite: boolean;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly job: string;
  private readonly loss: Gauge<string>;
  private readonly lr: Gauge<string>;
  private readonly gradNorm: Gauge<string>;
  private readonly inputTokens: Counter;
  private readonly samples: Counter;
  private readonly skipped: Counter;
  private readonly step: Gauge;
  private readonly lastStepTime: Gauge<string>;
  private readonly stepDuration: Histogram;
  private readonly allreduceDuration: Histogram;
  private readonly sentBytes: Counter;
  private readonly checkpointDuration: Histogram;
  private readonly checkpointSize: Gauge<string>;
  private readonly checkpointLastTime: Gauge<string>;
  private readonly phase: StateGauge;
  private readonly controlRejectedCounter: Counter<'reason'>;
  private readonly reconnects: Counter;
  private ringRejects?: () => Record<string, number>;
  private ringCpuSeconds?: () => number;

  /** `rank` undefined: not assigned yet (the series carry no rank label until setRank). */
  constructor(labels: { job: string; rank?: number; backend: string }) {
    this.job = labels.job;
    this.registry.setDefaultLabels({ [JOB_LABEL]: labels.job });
    if (labels.rank !== undefined && labels.rank >= 0) this.setRank(labels.rank);
    const registers = [this.registry];
    const N = METRIC_NAMES;
    // Values that mean nothing before their first event have no sample until then (a label-less gauge
    // would read 0; prom-client writes NaN as "Nan", which strict parsers refuse).
    const firstEvent = { labelNames: [JOB_LABEL], registers };
    this.loss = new Gauge({ name: N.workerLoss, help: "Mean loss per loss token of this rank's own micro-batches, last step (before the all-reduce)", ...firstEvent });
    this.lr = new Gauge({ name: N.workerLearningRate, help: 'Learning rate of the last step', ...firstEvent });
    this.gradNorm = new Gauge({ name: N.workerGradNorm, help: 'Global L2 norm of the all-reduced gradient before clipping, last step (same on every rank)', ...firstEvent });
    this.inputTokens = new Counter({ name: N.workerInputTokens, help: 'Tokens this worker fed through the model, padding included (B x T per micro-batch)', registers });
    this.samples = new Counter({ name: N.workerSamples, help: 'Examples processed by this worker', registers });
    this.skipped = new Counter({ name: N.workerSkippedSteps, help: 'Steps skipped on a non-finite loss or gradient (training.on_nonfinite: skip_step)', registers });
    this.step = new Gauge({ name: N.workerStep, help: 'Last optimizer step completed by this worker', registers });
    this.lastStepTime = new Gauge({ name: N.workerLastStepTime, help: 'Unix time at which this worker completed its last step', ...firstEvent });
    this.stepDuration = new Histogram({
      name: N.stepDuration,
      help: 'Wall time of one optimizer step on this worker (forward, backward, all-reduce, optimizer update)',
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.allreduceDuration = new Histogram({ name: N.allreduceDuration, help: 'Wall time of the gradient ring all-reduce of one step', buckets: DURATION_BUCKETS_SECONDS, registers });
    this.sentBytes = new Counter({ name: N.allreduceSentBytes, help: 'Bytes this worker sent to its ring neighbour in all-reduces', registers });
    this.checkpointDuration = new Histogram({ name: N.checkpointDuration, help: 'Wall time of writing one checkpoint (rank 0 writes them)', buckets: CHECKPOINT_BUCKETS_SECONDS, registers });
    this.checkpointSize = new Gauge({ name: N.checkpointSize, help: 'Bytes on disk of the latest checkpoint this worker wrote', ...firstEvent });
    this.checkpointLastTime = new Gauge({ name: N.workerCheckpointLastTime, help: 'Unix time at which this worker finished its latest checkpoint', ...firstEvent });
    const backendInfo = new Gauge({ name: N.backendInfo, help: 'TensorFlow.js backend in use (value is always 1)', labelNames: ['backend'], registers });
    backendInfo.set({ backend: labels.backend }, 1);
    this.phase = new StateGauge(
      new Gauge({ name: N.workerPhase, help: 'Worker lifecycle phase: 1 for the current phase, 0 for the others', labelNames: ['phase'], registers }),
      'phase',
      WORKER_PHASES,
    );
    this.phase.set('joining');
    const cpu = new Counter({
      name: N.allreduceCpuSeconds,
      help: 'Process CPU seconds spent inside all-reduces (divide its rate by the sent-bytes rate: CPU cost per byte, the transport regression signal)',
      registers,
      collect: () => {
        const seconds = this.ringCpuSeconds?.();
        if (seconds === undefined) return;
        cpu.reset();
        cpu.inc(seconds);
      },
    });
    this.controlRejectedCounter = rejectCounter(N.workerControlRejected, 'Control messages this worker dropped, by reason (auth.ts REJECT_REASONS)', registers);
    const ringRejected = new Counter({
      name: N.workerRingRejected,
      help: 'Ring calls this worker refused, by reason (bad token, foreign job, wrong sender, stale step)',
      labelNames: ['reason'],
      registers,
      collect: () => {
        const counts = this.ringRejects?.();
        if (!counts) return;
        ringRejected.reset();
        for (const [reason, n] of Object.entries(counts)) ringRejected.inc({ reason }, n);
      },
    });
    this.reconnects = reconnectCounter(N.workerNatsReconnects, registers);
    // Stock names (process_cpu_seconds_total, nodejs_heap_size_used_bytes, ...): stock Node.js dashboards work.
    collectDefaultMetrics({ register: this.registry });
  }

  /** The rank is known only after assignment. */
  setRank(rank: number): void {
    this.registry.setDefaultLabels({ [JOB_LABEL]: this.job, rank: String(rank) });
  }

  observeStep(r: WorkerStepRecord): void {
    const job = { [JOB_LABEL]: this.job };
    this.step.set(r.step);
    this.lastStepTime.set(job, Date.now() / 1000);
    if (Number.isFinite(r.localLoss)) this.loss.set(job, r.localLoss);
    this.lr.set(job, r.lr);
    if (Number.isFinite(r.gradNorm)) this.gradNorm.set(job, r.gradNorm);
    this.inputTokens.inc(r.inputTokens);
    this.samples.inc(r.samples);
    if (r.skippedNonFinite) this.skipped.inc();
    this.stepDuration.observe(r.stepSeconds);
    this.allreduceDuration.observe(r.allreduceSeconds);
    this.sentBytes.inc(r.allreduceBytes);
  }

  /** A checkpoint this worker wrote: its duration, and its size read from disk. */
  async checkpointWritten(seconds: number, path: string): Promise<void> {
    const job = { [JOB_LABEL]: this.job };
    this.checkpointDuration.observe(seconds);
    this.checkpointLastTime.set(job, Date.now() / 1000);
    this.checkpointSize.set(job, await sizeOnDisk(path).catch(() => 0));
  }

  setPhase(phase: WorkerPhase): void {
    this.phase.set(phase);
  }

  controlRejected(reason: RejectReason): void {
    this.controlRejectedCounter.inc({ reason });
  }

  /** Counts the control connection's reconnects (status events of the worker's NATS connection). */
  natsFrom(source: StatusSource): void {
    watchReconnects(source, () => this.reconnects.inc());
  }

  /** Where the ring's refusal counters and costs are read at each scrape (the ring exists only after assignment). */
  ringFrom(ring: { readonly rejected: object; readonly costs: { cpuSeconds: number } }): void {
    this.ringRejects = () => ({ ...(ring.rejected as Record<string, number>) });
    this.ringCpuSeconds = () => ring.costs.cpuSeconds;
  }
}

/** Bytes of a file, or of every file under a directory. */
async function sizeOnDisk(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const e of await readdir(path)) total += await sizeOnDisk(join(path, e));
  return total;
}
