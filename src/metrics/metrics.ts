/**
 * Prometheus metrics for the coordinator and the workers: every metric name ringtune exposes is
 * declared in this file (docs/metrics.md lists them with their meaning).
 *
 * Each process owns one Registry. Labels:
 *  - worker series carry {job, rank}; coordinator series carry {job}. Both are *default labels* of the
 *    registry, added at exposition time, so `setRank()` after assignment relabels every series at once
 *    (rank="-1" before that) without resetting counters.
 *  - Prometheus scrape configs must use `honor_labels: true` (ServiceMonitor: `honorLabels: true`),
 *    otherwise Prometheus renames our `job` label to `exported_job` in favour of its scrape-job name.
 *
 * Units are in the names (`_seconds`, `_bytes`, `_total` for counters), following
 * https://prometheus.io/docs/practices/naming/.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECT_REASONS, type RejectReason } from '../control/auth.ts';
import { WORKER_PHASES, type CoordinatorPhase, type WorkerPhase } from '../control/phases.ts';
import { InputError } from '../errors.ts';

export type { Registry } from 'prom-client';

/** Every metric name, in one table. Histograms also expose `_bucket`, `_sum` and `_count` series. */
export const METRIC_NAMES = {
  // coordinator: global numbers, one series per job
  loss: 'ringtune_loss',
  learningRate: 'ringtune_learning_rate',
  gradNorm: 'ringtune_grad_norm',
  tokens: 'ringtune_tokens_total',
  samples: 'ringtune_samples_total',
  tokensPerSecond: 'ringtune_tokens_per_second',
  step: 'ringtune_step',
  workersAlive: 'ringtune_workers_alive',
  worldSize: 'ringtune_world_size',
  replicaHashChecks: 'ringtune_replica_hash_checks_total',
  evalMetric: 'ringtune_eval_metric',
  evalRuns: 'ringtune_eval_runs_total',
  evalLastStep: 'ringtune_eval_last_step',
  checkpoints: 'ringtune_checkpoints_total',
  checkpointLastStep: 'ringtune_checkpoint_last_step',
  phase: 'ringtune_phase',
  controlRejected: 'ringtune_control_rejected_total',
  // worker: local numbers, one series per {job, rank}
  workerLoss: 'ringtune_worker_loss',
  workerLearningRate: 'ringtune_worker_learning_rate',
  workerGradNorm: 'ringtune_worker_grad_norm',
  workerTokens: 'ringtune_worker_tokens_total',
  workerSamples: 'ringtune_worker_samples_total',
  workerTokensPerSecond: 'ringtune_worker_tokens_per_second',
  workerStep: 'ringtune_worker_step',
  stepDuration: 'ringtune_worker_step_duration_seconds',
  allreduceDuration: 'ringtune_worker_allreduce_duration_seconds',
  allreduceSentBytes: 'ringtune_worker_allreduce_sent_bytes_total',
  busBandwidth: 'ringtune_worker_bus_bandwidth_bytes_per_second',
  backendInfo: 'ringtune_backend_info',
  workerPhase: 'ringtune_worker_phase',
  workerControlRejected: 'ringtune_worker_control_rejected_total',
  workerRingRejected: 'ringtune_worker_ring_rejected_total',
  allreduceCpuSeconds: 'ringtune_worker_allreduce_cpu_seconds_total',
} as const;

/** Prefix of the Node.js process metrics (prom-client's collectDefaultMetrics) in both processes. */
export const PROCESS_METRICS_PREFIX = 'ringtune_';

/** Step and all-reduce time buckets in seconds: 10 ms .. 60 s, roughly 1-2.5-5 per decade. */
export const DURATION_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];


export interface WorkerStepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Loss tokens this worker processed in the step. */
  tokens: number;
  samples: number;
  stepSeconds: number;
  allreduceSeconds: number;
  /** Bytes this worker sent during the step's all-reduce. */
  allreduceBytes: number;
  busBandwidthBytesPerSecond: number;
}

export interface CoordinatorStepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Global loss tokens of the step (summed over workers). */
  tokens: number;
  samples: number;
  tokensPerSecond: number;
}

/**
 * An info-style gauge `name{label=...}`: 1 for the current value, 0 for every value seen before, so
 * `name == 1` selects the current one and the history of values stays queryable.
 */
class StateGauge {
  private current: string | undefined;
  constructor(private readonly gauge: Gauge<string>, private readonly label: string, known: readonly string[] = []) {
    for (const v of known) gauge.set({ [label]: v }, 0);
  }
  set(value: string): void {
    if (this.current !== undefined && this.current !== value) this.gauge.set({ [this.label]: this.current }, 0);
    this.gauge.set({ [this.label]: value }, 1);
    this.current = value;
  }
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly job: string;
  private readonly loss: Gauge<'job'>;
  private readonly lr: Gauge<'job'>;
  private readonly gradNorm: Gauge<'job'>;
  private readonly tokens: Counter;
  private readonly samples: Counter;
  private readonly tokensPerSecond: Gauge;
  private readonly step: Gauge;
  private readonly stepDuration: Histogram;
  private readonly allreduceDuration: Histogram;
  private readonly sentBytes: Counter;
  private readonly busBandwidth: Gauge;
  private readonly phase: StateGauge;
  private readonly controlRejectedCounter: Counter<'reason'>;
  private ringRejects?: () => Record<string, number>;
  private ringCpuSeconds?: () => number;

  constructor(labels: { job: string; rank: number; backend: string }) {
    this.job = labels.job;
    this.setRank(labels.rank);
    const registers = [this.registry];
    const N = METRIC_NAMES;
    // Loss, lr and gradient norm mean nothing before the first step, so they have no sample until then
    // (a label-less gauge would read 0; prom-client writes NaN as "Nan", which strict parsers refuse).
    const firstStep = { labelNames: ['job'], registers };
    this.loss = new Gauge({ name: N.workerLoss, help: 'Mean loss per token of the last step on this worker', ...firstStep });
    this.lr = new Gauge({ name: N.workerLearningRate, help: 'Learning rate of the last step', ...firstStep });
    this.gradNorm = new Gauge({ name: N.workerGradNorm, help: 'Global L2 norm of the all-reduced gradient before clipping, last step', ...firstStep });
    this.tokens = new Counter({ name: N.workerTokens, help: 'Loss tokens processed by this worker', registers });
    this.samples = new Counter({ name: N.workerSamples, help: 'Examples processed by this worker', registers });
    this.tokensPerSecond = new Gauge({ name: N.workerTokensPerSecond, help: "This worker's tokens divided by the step time, last step", registers });
    this.step = new Gauge({ name: N.workerStep, help: 'Last optimizer step completed by this worker', registers });
    this.stepDuration = new Histogram({
      name: N.stepDuration,
      help: 'Wall time of one optimizer step on this worker (forward, backward, all-reduce, update)',
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.allreduceDuration = new Histogram({
      name: N.allreduceDuration,
      help: 'Wall time of the gradient ring all-reduce of one step',
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.sentBytes = new Counter({ name: N.allreduceSentBytes, help: 'Bytes this worker sent to its ring neighbour in all-reduces', registers });
    this.busBandwidth = new Gauge({
      name: N.busBandwidth,
      help: 'All-reduce bus bandwidth of the last step: 2(N-1)/N * gradient bytes / all-reduce time',
      registers,
    });
    const backendInfo = new Gauge({ name: N.backendInfo, help: 'TensorFlow.js backend in use (value is always 1)', labelNames: ['backend'], registers });
    backendInfo.set({ backend: labels.backend }, 1);
    this.phase = new StateGauge(
      new Gauge({ name: N.workerPhase, help: 'Worker lifecycle phase: 1 for the current phase, 0 for the others', labelNames: ['phase'], registers }),
      'phase',
      WORKER_PHASES,
    );
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
    collectDefaultMetrics({ register: this.registry, prefix: PROCESS_METRICS_PREFIX });
  }

  /** The rank is known only after assignment (and may change when the ring re-forms). */
  setRank(rank: number): void {
    this.registry.setDefaultLabels({ job: this.job, rank: String(rank) });
  }

  observeStep(r: WorkerStepRecord): void {
    this.step.set(r.step);
    const job = { job: this.job };
    this.loss.set(job, r.loss);
    this.lr.set(job, r.lr);
    this.gradNorm.set(job, r.gradNorm);
    this.tokens.inc(r.tokens);
    this.samples.inc(r.samples);
    this.tokensPerSecond.set(r.stepSeconds > 0 ? r.tokens / r.stepSeconds : 0);
    this.stepDuration.observe(r.stepSeconds);
    this.allreduceDuration.observe(r.allreduceSeconds);
    this.sentBytes.inc(r.allreduceBytes);
    this.busBandwidth.set(r.busBandwidthBytesPerSecond);
  }

  setPhase(phase: WorkerPhase): void {
    this.phase.set(phase);
  }

  controlRejected(reason: RejectReason): void {
    this.controlRejectedCounter.inc({ reason });
  }

  /** Where the ring's refusal counters and costs are read at each scrape (the ring exists only after assignment). */
  ringFrom(ring: { readonly rejected: object; readonly costs: { cpuSeconds: number } }): void {
    this.ringRejects = () => ({ ...(ring.rejected as Record<string, number>) });
    this.ringCpuSeconds = () => ring.costs.cpuSeconds;
  }
}

/** A {reason} counter with every reason present from the start (0), so rate() works from the first scrape. */
function rejectCounter(name: string, help: string, registers: Registry[]): Counter<'reason'> {
  const c = new Counter({ name, help, labelNames: ['reason'], registers });
  for (const reason of REJECT_REASONS) c.inc({ reason }, 0);
  return c;
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly job: string;
  private readonly loss: Gauge<'job'>;
  private readonly lr: Gauge<'job'>;
  private readonly gradNorm: Gauge<'job'>;
  private readonly tokens: Counter;
  private readonly samples: Counter;
  private readonly tokensPerSecond: Gauge;
  private readonly step: Gauge;
  private readonly workersAlive: Gauge;
  private readonly worldSize: Gauge;
  private readonly hashChecks: Counter<'result'>;
  private readonly evalMetric: Gauge<'metric'>;
  private readonly evalRuns: Counter;
  private readonly evalLastStep: Gauge;
  private readonly checkpoints: Counter;
  private readonly checkpointLastStep: Gauge;
  private readonly phase: StateGauge;
  private readonly controlRejectedCounter: Counter<'reason'>;

  constructor(labels: { job: string }) {
    this.job = labels.job;
    this.registry.setDefaultLabels({ job: labels.job });
    const registers = [this.registry];
    const N = METRIC_NAMES;
    const firstStep = { labelNames: ['job'], registers }; // no sample before the first step (see WorkerMetrics)
    this.loss = new Gauge({ name: N.loss, help: 'Mean loss per token of the last step over all workers', ...firstStep });
    this.lr = new Gauge({ name: N.learningRate, help: 'Learning rate of the last step', ...firstStep });
    this.gradNorm = new Gauge({ name: N.gradNorm, help: 'Global L2 norm of the gradient before clipping, last step', ...firstStep });
    this.tokens = new Counter({ name: N.tokens, help: 'Loss tokens processed by all workers', registers });
    this.samples = new Counter({ name: N.samples, help: 'Examples processed by all workers', registers });
    this.tokensPerSecond = new Gauge({ name: N.tokensPerSecond, help: 'Global training throughput of the last step (loss tokens per second)', registers });
    this.step = new Gauge({ name: N.step, help: 'Last completed optimizer step', registers });
    this.workersAlive = new Gauge({ name: N.workersAlive, help: 'Workers whose heartbeats are current', registers });
    this.worldSize = new Gauge({ name: N.worldSize, help: 'Ranks in the current ring', registers });
    this.hashChecks = new Counter({
      name: N.replicaHashChecks,
      help: 'Cross-worker parameter hash comparisons by result (match | mismatch)',
      labelNames: ['result'],
      registers,
    });
    this.hashChecks.inc({ result: 'match' }, 0);
    this.hashChecks.inc({ result: 'mismatch' }, 0);
    this.evalMetric = new Gauge({ name: N.evalMetric, help: 'Latest value of each evaluation metric', labelNames: ['metric'], registers });
    this.evalRuns = new Counter({ name: N.evalRuns, help: 'Completed evaluation runs', registers });
    this.evalLastStep = new Gauge({ name: N.evalLastStep, help: 'Step of the latest evaluation', registers });
    this.checkpoints = new Counter({ name: N.checkpoints, help: 'Checkpoints written', registers });
    this.checkpointLastStep = new Gauge({ name: N.checkpointLastStep, help: 'Step of the latest checkpoint written', registers });
    this.phase = new StateGauge(
      new Gauge({ name: N.phase, help: 'Coordinator phase: 1 for the current phase, 0 for earlier ones', labelNames: ['phase'], registers }),
      'phase',
    );
    this.controlRejectedCounter = rejectCounter(N.controlRejected, 'Control messages the coordinator dropped, by reason (auth.ts REJECT_REASONS)', registers);
    collectDefaultMetrics({ register: this.registry, prefix: PROCESS_METRICS_PREFIX });
  }

  setWorkersAlive(n: number): void {
    this.workersAlive.set(n);
  }

  setWorldSize(n: number): void {
    this.worldSize.set(n);
  }

  observeStep(r: CoordinatorStepRecord): void {
    this.step.set(r.step);
    const job = { job: this.job };
    this.loss.set(job, r.loss);
    this.lr.set(job, r.lr);
    this.gradNorm.set(job, r.gradNorm);
    this.tokens.inc(r.tokens);
    this.samples.inc(r.samples);
    this.tokensPerSecond.set(r.tokensPerSecond);
  }

  replicaHashCheck(ok: boolean): void {
    this.hashChecks.inc({ result: ok ? 'match' : 'mismatch' });
  }

  observeEval(step: number, metrics: Record<string, number>): void {
    for (const [metric, value] of Object.entries(metrics)) this.evalMetric.set({ metric }, value);
    this.evalLastStep.set(step);
    this.evalRuns.inc();
  }

  checkpointWritten(step: number): void {
    this.checkpointLastStep.set(step);
    this.checkpoints.inc();
  }

  controlRejected(reason: RejectReason): void {
    this.controlRejectedCounter.inc({ reason });
  }

  setPhase(phase: CoordinatorPhase): void {
    this.phase.set(phase);
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text format) and GET /healthz ("ok") on node:http. Port 0 = ephemeral. */
export function startMetricsServer(registry: Registry, opts: { port: number; host?: string }): Promise<MetricsServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics collection failed: ${String(err)}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics or /healthz\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const host = opts.host ?? '0.0.0.0';
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new InputError(
          `metrics server cannot listen on ${host}:${opts.port} (${err.code ?? err.message}); ` +
            'pick another port with --metrics-port (0 = any free port)',
          { cause: err },
        ),
      );
    server.once('error', onError);
    server.listen(opts.port, host, () => {
      server.off('error', onError);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            // Keep-alive connections (Prometheus holds one open) would otherwise delay close forever.
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}
