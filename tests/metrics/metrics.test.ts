/**
 * Metrics over real HTTP: record known values, fetch /metrics from the server, parse the Prometheus
 * text exposition format (own parser below, per https://prometheus.io/docs/instrumenting/exposition_formats/)
 * and compare every value, label and histogram bucket with numbers worked out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { CoordinatorMetrics, METRIC_NAMES, WorkerMetrics, startMetricsServer, type MetricsServer } from '../../src/metrics/metrics.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
}

/** Parses `name{a="x",b="y\"z"} value` lines plus `# TYPE` comments. */
function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const body = m[2].slice(1, -1);
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
      let lm: RegExpExecArray | null;
      let consumed = 0;
      while ((lm = re.exec(body)) !== null) {
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        consumed = re.lastIndex;
      }
      assert.equal(consumed, body.length, `bad label set in: ${line}`);
    }
    // Prometheus reads values with Go's strconv.ParseFloat, which takes NaN/Inf in any case; prom-client
    // writes "Nan" (e.g. the event-loop lag gauges before their first sample).
    const raw = m[3].toLowerCase();
    const value = raw === '+inf' || raw === 'inf' ? Infinity : raw === '-inf' ? -Infinity : raw === 'nan' ? NaN : Number(raw);
    assert.ok(!Number.isNaN(value) || raw === 'nan', `bad value in: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { samples, types };
}

/** The single sample of `name` whose labels include `labels`; fails if there are none or several. */
function one(e: Exposition, name: string, labels: Record<string, string> = {}): Sample {
  const hits = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(hits.length, 1, `${name}${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0];
}
const value = (e: Exposition, name: string, labels: Record<string, string> = {}) => one(e, name, labels).value;

async function scrape(server: MetricsServer): Promise<Exposition> {
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  return parseExposition(await res.text());
}

const step1 = {
  step: 1, localLoss: 2.5, lr: 0.001, gradNorm: 1.25, inputTokens: 1000, samples: 8,
  stepSeconds: 0.02, allreduceSeconds: 0.004, allreduceBytes: 4096, skippedNonFinite: false,
};
const step2 = {
  step: 2, localLoss: 2.0, lr: 0.0005, gradNorm: 0.75, inputTokens: 500, samples: 4,
  stepSeconds: 3, allreduceSeconds: 0.3, allreduceBytes: 1024, skippedNonFinite: true,
};

test('worker metrics: values, {ringtune_job, rank} labels, histogram buckets, phase and backend info', async (t) => {
  const m = new WorkerMetrics({ job: 'demo', backend: 'wasm' });
  const server = await startMetricsServer(m.registry, { port: 0, host: '127.0.0.1' });
  t.after(() => server.close());
  assert.ok(server.port > 0);

  let e = await scrape(server);
  // Before assignment no series carries a rank (no rank="-1" series); loss has no value yet (NaN, not 0).
  for (const s of e.samples) assert.deepEqual([s.labels.ringtune_job, s.labels.rank, s.labels.job], ['demo', undefined, undefined], s.name);
  assert.equal(e.samples.filter((s) => s.name === 'ringtune_worker_loss').length, 0);
  assert.equal(value(e, 'ringtune_worker_input_tokens_total'), 0);
  assert.equal(value(e, 'ringtune_backend_info', { backend: 'wasm' }), 1);
  for (const p of ['loading', 'training', 'done', 'failed']) assert.equal(value(e, 'ringtune_worker_phase', { phase: p }), 0);
  assert.equal(value(e, 'ringtune_worker_phase', { phase: 'joining' }), 1);

  m.setRank(3);
  m.setPhase('joining');
  m.setPhase('training');
  m.observeStep(step1);
  m.observeStep(step2);
  e = await scrape(server);
  const L = { ringtune_job: 'demo', rank: '3' };
  for (const s of e.samples) assert.deepEqual({ ringtune_job: s.labels.ringtune_job, rank: s.labels.rank }, L, s.name);
  assert.equal(e.types.get('ringtune_worker_loss'), 'gauge');
  assert.equal(e.types.get('ringtune_worker_input_tokens_total'), 'counter');
  assert.equal(e.types.get('ringtune_worker_step_duration_seconds'), 'histogram');
  assert.equal(value(e, 'ringtune_worker_step', L), 2);
  assert.equal(value(e, 'ringtune_worker_loss', L), 2.0);
  assert.equal(value(e, 'ringtune_worker_learning_rate', L), 0.0005);
  assert.equal(value(e, 'ringtune_worker_grad_norm', L), 0.75);
  assert.equal(value(e, 'ringtune_worker_input_tokens_total', L), 1500);
  assert.equal(value(e, 'ringtune_worker_samples_total', L), 12);
  assert.equal(value(e, 'ringtune_worker_nonfinite_skipped_steps_total', L), 1);
  assert.equal(value(e, 'ringtune_worker_allreduce_sent_bytes_total', L), 5120);
  const lastStep = value(e, 'ringtune_worker_last_step_timestamp_seconds', L);
  assert.ok(Math.abs(lastStep - Date.now() / 1000) < 60, `last-step time ${lastStep}`);
  assert.equal(value(e, 'ringtune_worker_phase', { phase: 'joining' }), 0);
  assert.equal(value(e, 'ringtune_worker_phase', { phase: 'training' }), 1);
  assert.equal(value(e, 'ringtune_backend_info', { backend: 'wasm' }), 1);

  // Step times 0.02 s and 3 s: cumulative buckets by hand.
  const stepBuckets: Record<string, number> = {
    '0.01': 0, '0.025': 1, '0.05': 1, '0.1': 1, '0.25': 1, '0.5': 1, '1': 1, '2.5': 1, '5': 2, '10': 2, '20': 2, '30': 2, '60': 2, '+Inf': 2,
  };
  for (const [le, n] of Object.entries(stepBuckets)) assert.equal(value(e, 'ringtune_worker_step_duration_seconds_bucket', { le }), n, `le=${le}`);
  assert.equal(value(e, 'ringtune_worker_step_duration_seconds_count'), 2);
  assert.ok(Math.abs(value(e, 'ringtune_worker_step_duration_seconds_sum') - 3.02) < 1e-12);
  // All-reduce times 0.004 s and 0.3 s.
  const arBuckets: Record<string, number> = { '0.01': 1, '0.25': 1, '0.5': 2, '60': 2, '+Inf': 2 };
  for (const [le, n] of Object.entries(arBuckets)) assert.equal(value(e, 'ringtune_worker_allreduce_duration_seconds_bucket', { le }), n, `le=${le}`);
  assert.equal(value(e, 'ringtune_worker_allreduce_duration_seconds_count'), 2);
  assert.ok(Math.abs(value(e, 'ringtune_worker_allreduce_duration_seconds_sum') - 0.304) < 1e-12);

  // The node process metrics are there too, under their stock names.
  assert.ok(value(e, 'process_resident_memory_bytes') > 0);
  assert.equal(e.samples.filter((s) => s.name.startsWith('ringtune_process') || s.name.startsWith('ringtune_nodejs')).length, 0);

  m.setPhase('done');
  e = await scrape(server);
  assert.equal(value(e, 'ringtune_worker_phase', { phase: 'training' }), 0);
  assert.equal(value(e, 'ringtune_worker_phase', { phase: 'done' }), 1);
});

test('coordinator metrics: global step numbers, hash checks, eval, checkpoints, phase', async (t) => {
  const m = new CoordinatorMetrics({ job: 'demo' });
  const server = await startMetricsServer(m.registry, { port: 0, host: '127.0.0.1' });
  t.after(() => server.close());

  let e = await scrape(server);
  assert.equal(value(e, 'ringtune_replica_hash_checks_total', { result: 'match' }), 0);
  assert.equal(value(e, 'ringtune_replica_hash_checks_total', { result: 'mismatch' }), 0);
  // Waiting for workers is a phase from the start.
  assert.equal(value(e, 'ringtune_phase', { phase: 'waiting-for-workers' }), 1);
  assert.equal(value(e, 'ringtune_run_failures_total'), 0);
  for (const name of ['ringtune_eval_loss', 'ringtune_eval_score_ratio', 'ringtune_loss', 'ringtune_learning_rate', 'ringtune_grad_norm', 'ringtune_total_steps', 'ringtune_worker_heartbeat_age_seconds']) {
    assert.equal(e.samples.filter((s) => s.name === name).length, 0, `${name} before the first step`);
  }

  m.setPhase('waiting-for-workers');
  m.setWorldSize(4);
  m.setWorkersAlive(3);
  m.setPhase('training');
  m.statusFrom(() => ({ totalSteps: 20, workers: [{ rank: 0, heartbeatAgeMs: 1500 }, { rank: 1, heartbeatAgeMs: 250 }, { rank: -1, heartbeatAgeMs: 9000 }] }));
  m.observeStep({ step: 7, loss: 3.25, lr: 0.002, gradNorm: 4, inputTokens: 4000, samples: 32 });
  m.observeStep({ step: 8, loss: 3.0, lr: 0.001, gradNorm: 2, inputTokens: 3000, samples: 32 });
  m.replicaHashCheck(true);
  m.replicaHashCheck(true);
  m.replicaHashCheck(false);
  m.observeEval(8, { loss: 2.75, perplexity: 15.642631884188171 });
  m.observeEval(10, { loss: 2.5, accuracy: 0.5, bleu: 25, examples: 40 });
  m.checkpointWritten(5);
  m.checkpointWritten(10);

  e = await scrape(server);
  for (const s of e.samples) {
    assert.equal(s.labels.ringtune_job, 'demo', s.name);
    if (s.name !== 'ringtune_worker_heartbeat_age_seconds') assert.equal(s.labels.rank, undefined, `${s.name} must not carry a rank`);
  }
  assert.equal(value(e, 'ringtune_step'), 8);
  assert.equal(value(e, 'ringtune_loss'), 3.0);
  assert.equal(value(e, 'ringtune_learning_rate'), 0.001);
  assert.equal(value(e, 'ringtune_grad_norm'), 2);
  assert.equal(value(e, 'ringtune_input_tokens_total'), 7000);
  assert.equal(value(e, 'ringtune_samples_total'), 64);
  assert.equal(value(e, 'ringtune_total_steps'), 20);
  // Heartbeat ages in seconds, assigned ranks only.
  assert.equal(value(e, 'ringtune_worker_heartbeat_age_seconds', { rank: '0' }), 1.5);
  assert.equal(value(e, 'ringtune_worker_heartbeat_age_seconds', { rank: '1' }), 0.25);
  assert.equal(e.samples.filter((s) => s.name === 'ringtune_worker_heartbeat_age_seconds').length, 2);
  assert.equal(value(e, 'ringtune_world_size'), 4);
  assert.equal(value(e, 'ringtune_workers_alive'), 3);
  assert.equal(value(e, 'ringtune_replica_hash_checks_total', { result: 'match' }), 2);
  assert.equal(value(e, 'ringtune_replica_hash_checks_total', { result: 'mismatch' }), 1);
  assert.equal(value(e, 'ringtune_eval_loss'), 2.5);
  assert.equal(value(e, 'ringtune_eval_perplexity'), 15.642631884188171); // kept from the first run
  assert.equal(value(e, 'ringtune_eval_score_ratio', { metric: 'accuracy' }), 0.5);
  assert.equal(value(e, 'ringtune_eval_score_ratio', { metric: 'bleu' }), 0.25); // sacreBLEU's 0..100 as a ratio
  assert.equal(value(e, 'ringtune_eval_scored', { unit: 'examples' }), 40);
  assert.equal(value(e, 'ringtune_eval_runs_total'), 2);
  assert.equal(value(e, 'ringtune_eval_last_step'), 10);
  assert.equal(value(e, 'ringtune_checkpoints_total'), 2);
  assert.equal(value(e, 'ringtune_checkpoint_last_step'), 10);
  assert.equal(value(e, 'ringtune_phase', { phase: 'waiting-for-workers' }), 0);
  assert.equal(value(e, 'ringtune_phase', { phase: 'training' }), 1);
  assert.equal(e.types.get('ringtune_replica_hash_checks_total'), 'counter');
  m.setPhase('failed');
  e = await scrape(server);
  assert.equal(value(e, 'ringtune_run_failures_total'), 1);
  assert.equal(value(e, 'ringtune_phase', { phase: 'failed' }), 1);
});

test('label values are escaped in the exposition', async (t) => {
  const m = new CoordinatorMetrics({ job: 'a"b\\c' });
  m.observeEval(1, { accuracy: 0.25 });
  const server = await startMetricsServer(m.registry, { port: 0, host: '127.0.0.1' });
  t.after(() => server.close());
  const e = await scrape(server);
  assert.equal(value(e, 'ringtune_eval_score_ratio', { metric: 'accuracy', ringtune_job: 'a"b\\c' }), 0.25);
});

test('every declared name is registered by exactly one process, every non-process name starts with ringtune_', async () => {
  const w = new WorkerMetrics({ job: 'j', rank: 0, backend: 'cpu' });
  const c = new CoordinatorMetrics({ job: 'j' });
  const ours = (names: string[]) => names.filter((n) => Object.values(METRIC_NAMES).includes(n as never));
  const wNames = w.registry.getMetricsAsArray().map((x) => x.name);
  const cNames = c.registry.getMetricsAsArray().map((x) => x.name);
  assert.deepEqual([...ours(wNames), ...ours(cNames)].sort(), Object.values(METRIC_NAMES).sort());
  assert.deepEqual(ours(wNames).filter((n) => cNames.includes(n)), []);
  for (const n of [...wNames, ...cNames]) assert.match(n, /^(ringtune_[a-z0-9_]+|process_[a-z_]+|nodejs_[a-z0-9_]+)$/);
});

test('server: /healthz, 404, 405, close frees the port even with a keep-alive client', async () => {
  const m = new CoordinatorMetrics({ job: 'j' });
  const server = await startMetricsServer(m.registry, { port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${server.port}`;
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'ok');
  assert.equal((await fetch(`${base}/nope`)).status, 404);
  assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  // fetch keeps its connection alive; close must not wait for it.
  const t0 = Date.now();
  await server.close();
  assert.ok(Date.now() - t0 < 2000, 'close waited for keep-alive connections');
  await assert.rejects(fetch(`${base}/healthz`));
  // The port is free again: a plain TCP server can bind it.
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(server.port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

test('server: a port in use is an InputError that names the port and the flag', async (t) => {
  const m = new CoordinatorMetrics({ job: 'j' });
  const first = await startMetricsServer(m.registry, { port: 0, host: '127.0.0.1' });
  t.after(() => first.close());
  await assert.rejects(startMetricsServer(m.registry, { port: first.port, host: '127.0.0.1' }), (err: Error) => {
    assert.equal(err.name, 'InputError');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${first.port}.*EADDRINUSE.*--metrics-port`));
    return true;
  });
});
