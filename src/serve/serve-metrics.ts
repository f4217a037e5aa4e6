/**
 * Prometheus metrics of `ringtune serve`, exposed at GET /metrics on the serving port. Named in the
 * style of src/metrics/names.ts (units in the names, `_total` for counters, process metrics under
 * their stock names); kept here because training's METRIC_NAMES are checked to be exactly
 * what the coordinator and workers register. docs/metrics.md lists them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DURATION_BUCKETS_SECONDS } from '../metrics/names.ts';

export const SERVE_METRIC_NAMES = {
  queueDepth: 'ringtune_serve_queue_depth',
  requests: 'ringtune_serve_requests_total',
  generationDuration: 'ringtune_serve_generation_duration_seconds',
  generatedTokens: 'ringtune_serve_generated_tokens_total',
} as const;

/**
 * How an inference request (POST /v1/...) ended: `ok` 200; `4xx` refused as invalid (400, 404, 413);
 * `503` turned away because the queue was full; `5xx` failed inside the server; `cancelled` its client
 * went away before the answer (while queued: its job never ran; while generating: stopped between tokens).
 */
export const REQUEST_OUTCOMES = ['ok', '4xx', '503', '5xx', 'cancelled'] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

export class ServeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'outcome'>;
  private readonly generationDuration: Histogram;
  private readonly generatedTokens: Counter;

  /** `queueDepth` is read at every scrape, so the gauge is never stale. */
  constructor(queueDepth: () => number) {
    const registers = [this.registry];
    const N = SERVE_METRIC_NAMES;
    new Gauge({
      name: N.queueDepth,
      help: 'Requests waiting behind the one running on the model',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    this.requests = new Counter({ name: N.requests, help: 'Inference requests by outcome (ok | 4xx | 503 | 5xx | cancelled)', labelNames: ['outcome'], registers });
    for (const outcome of REQUEST_OUTCOMES) this.requests.inc({ outcome }, 0);
    this.generationDuration = new Histogram({
      name: N.generationDuration,
      help: 'Wall time one completion spent generating (queue wait excluded; cancelled generations included)',
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.generatedTokens = new Counter({ name: N.generatedTokens, help: 'Tokens generated, counted as they are produced', registers });
    collectDefaultMetrics({ register: this.registry }); // stock names: stock Node.js dashboards work
  }

  request(outcome: RequestOutcome): void {
    this.requests.inc({ outcome });
  }

  token(): void {
    this.generatedTokens.inc();
  }

  observeGeneration(seconds: number): void {
    this.generationDuration.observe(seconds);
  }
}
