/**
 * Every metric name ringtune's coordinator and workers expose, in one table (docs/metrics.md gives
 * each its type, labels and meaning; tests/metrics/docs-match.test.ts checks the two agree).
 *
 * Units are in the names (`_seconds`, `_bytes`, `_total` for counters), following
 * https://prometheus.io/docs/practices/naming/. Rates are taken from counters with rate(): a
 * last-step gauge samples one step in every scrape interval and aliases (a 5 s scrape of 50 ms steps
 * sees 1 step in 100). Gauges hold a value whose meaning is "the latest" (loss, lr, step, timestamps).
 */
export const METRIC_NAMES = {
  // coordinator: global numbers, one series per job
  step: 'ringtune_step',
  totalSteps: 'ringtune_total_steps',
  lastStepTime: 'ringtune_last_step_timestamp_seconds',
  loss: 'ringtune_loss',
  learningRate: 'ringtune_learning_rate',
  gradNorm: 'ringtune_grad_norm',
  inputTokens: 'ringtune_input_tokens_total',
  samples: 'ringtune_samples_total',
  workersAlive: 'ringtune_workers_alive',
  worldSize: 'ringtune_world_size',
  heartbeatAge: 'ringtune_worker_heartbeat_age_seconds',
  replicaHashChecks: 'ringtune_replica_hash_checks_total',
  evalLoss: 'ringtune_eval_loss',
  evalPerplexity: 'ringtune_eval_perplexity',
  evalScore: 'ringtune_eval_score_ratio',
  evalScored: 'ringtune_eval_scored',
  evalRuns: 'ringtune_eval_runs_total',
  evalLastStep: 'ringtune_eval_last_step',
  evalLastTime: 'ringtune_eval_last_timestamp_seconds',
  checkpoints: 'ringtune_checkpoints_total',
  checkpointLastStep: 'ringtune_checkpoint_last_step',
  checkpointLastTime: 'ringtune_checkpoint_last_timestamp_seconds',
  phase: 'ringtune_phase',
  runFailures: 'ringtune_run_failures_total',
  controlRejected: 'ringtune_control_rejected_total',
  natsReconnects: 'ringtune_nats_reconnects_total',
  // worker: local numbers, one series per {ringtune_job, rank}
  workerStep: 'ringtune_worker_step',
  workerLastStepTime: 'ringtune_worker_last_step_timestamp_seconds',
  workerLoss: 'ringtune_worker_loss',
  workerLearningRate: 'ringtune_worker_learning_rate',
  workerGradNorm: 'ringtune_worker_grad_norm',
  workerInputTokens: 'ringtune_worker_input_tokens_total',
  workerSamples: 'ringtune_worker_samples_total',
  workerSkippedSteps: 'ringtune_worker_nonfinite_skipped_steps_total',
  stepDuration: 'ringtune_worker_step_duration_seconds',
  allreduceDuration: 'ringtune_worker_allreduce_duration_seconds',
  allreduceSentBytes: 'ringtune_worker_allreduce_sent_bytes_total',
  allreduceCpuSeconds: 'ringtune_worker_allreduce_cpu_seconds_total',
  checkpointDuration: 'ringtune_worker_checkpoint_duration_seconds',
  checkpointSize: 'ringtune_worker_checkpoint_size_bytes',
  workerCheckpointLastTime: 'ringtune_worker_checkpoint_last_timestamp_seconds',
  backendInfo: 'ringtune_backend_info',
  workerPhase: 'ringtune_worker_phase',
  workerControlRejected: 'ringtune_worker_control_rejected_total',
  workerRingRejected: 'ringtune_worker_ring_rejected_total',
  workerNatsReconnects: 'ringtune_worker_nats_reconnects_total',
} as const;

/** The job label of every series: not `job`, which Prometheus sets to the scrape job's name. */
export const JOB_LABEL = 'ringtune_job';

/** Step and all-reduce time buckets in seconds: 10 ms .. 60 s, roughly 1-2.5-5 per decade. */
export const DURATION_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];

/** Checkpoint write buckets in seconds: 0.1 s (a tiny model) .. 10 min (billions of parameters to NFS). */
export const CHECKPOINT_BUCKETS_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * Evaluation result keys (src/eval) -> where they go. One unit per metric name: the loss in nats,
 * perplexity, scores as a ratio 0..1 (sacreBLEU and SQuAD report 0..100: scaled by 1/100), and how
 * many tokens / examples / generations were scored. A key missing here is not exported (the
 * docs-match test lists every key src/eval produces).
 */
export const EVAL_KEYS: Readonly<Record<string, { kind: 'loss' | 'perplexity' | 'score' | 'scored'; scale?: number }>> = {
  loss: { kind: 'loss' },
  perplexity: { kind: 'perplexity' },
  accuracy: { kind: 'score' },
  f1_macro: { kind: 'score' },
  precision_macro: { kind: 'score' },
  recall_macro: { kind: 'score' },
  f1_micro: { kind: 'score' },
  rouge1: { kind: 'score' },
  rouge2: { kind: 'score' },
  rougeL: { kind: 'score' },
  bleu: { kind: 'score', scale: 0.01 },
  exact_match: { kind: 'score', scale: 0.01 },
  token_f1: { kind: 'score', scale: 0.01 },
  tokens: { kind: 'scored' },
  examples: { kind: 'scored' },
  generated: { kind: 'scored' },
};
