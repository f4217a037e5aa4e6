/**
 * End to end: a real Prometheus (Debian's /usr/bin/prometheus) scrapes a short `ringtune local` run
 * (coordinator + 2 workers) through deploy/prometheus/prometheus.yml and the file_sd targets file the
 * run writes, and every PromQL expression of the Grafana dashboard returns data through Prometheus'
 * HTTP API, with Grafana's variables replaced by concrete values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DASHBOARD_PATH, dashboardQueries } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/ringtune.js');
const PROMETHEUS = '/usr/bin/prometheus';
const JOB = 'dash-e2e';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `count` consecutive free TCP ports on 127.0.0.1 (the --metrics-port-base contract needs a run of them). */
async function freePorts(count: number): Promise<number> {
  const isFree = (port: number) =>
    new Promise<boolean>((done) => {
      const s = createServer().once('error', () => done(false));
      s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await isFree(base + i);
    if (ok) return base;
  }
  throw new Error('no run of free ports');
}

/** Short sentences for a text-format JSONL dataset: enough for a few steps and an eval split. */
function dataset(lines: number): string {
  const subjects = ['the ring', 'a worker', 'the coordinator', 'every rank', 'the gradient', 'a checkpoint'];
  const verbs = ['sends', 'reduces', 'writes', 'reads', 'averages', 'checks'];
  const objects = ['its chunk to the right', 'the loss over tokens', 'the model to disk', 'the shard plan', 'the parameter hash', 'the next batch'];
  return Array.from({ length: lines }, (_, i) =>
    JSON.stringify({ text: `${subjects[i % 6]} ${verbs[(i * 5) % 6]} ${objects[(i * 7) % 6]}, step ${i}.` })).join('\n') + '\n';
}

function track(child: ChildProcess): () => string {
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  return () => out;
}

async function promApi(base: string, path: string, params: Record<string, string>): Promise<{ resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }> }> {
  const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`);
  const body = (await res.json()) as { status: string; data: never; error?: string };
  assert.equal(body.status, 'success', `${path} ${JSON.stringify(params)}: ${body.error}`);
  return body.data;
}

test('Prometheus scrapes a ringtune local run and every dashboard query returns data', { timeout: 150_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-prom-e2e-'));
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // 1. A tiny model, a dataset and a job spec (keys as `ringtune init` writes them).
  execFileSync(process.execPath, [CLI, 'model', 'create', '--family', 'gpt2', '--preset', 'tiny', '--out', join(dir, 'model')], { stdio: 'pipe' });
  writeFileSync(join(dir, 'train.jsonl'), dataset(96));
  writeFileSync(join(dir, 'job.yaml'), [
    `name: ${JOB}`,
    'model: model',
    'data:',
    '  train: train.jsonl',
    '  format: text',
    '  max_seq_len: 32',
    '  eval_fraction: 0.2',
    'training:',
    '  max_steps: 10',
    '  global_batch: 4',
    '  micro_batch: 2',
    '  lr: 0.001',
    '  schedule: constant',
    'checkpoint:',
    '  every_n_steps: 3',
    '  keep: 2',
    'eval:',
    '  every_n_steps: 5',
    '  max_batches: 2',
    'output: out',
    '',
  ].join('\n'));

  // 2. Prometheus on deploy/prometheus/prometheus.yml, scraping every second, started first so it sees
  //    the targets file appear.
  const output = join(dir, 'out');
  const config = readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')
    .replaceAll('__RINGTUNE_OUTPUT__', output)
    .replace(/scrape_interval: \S+/, 'scrape_interval: 1s')
    .replace(/refresh_interval: \S+/, 'refresh_interval: 1s');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const promPort = await freePorts(1);
  const prom = spawn(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(prom);
  const promLog = track(prom);
  const api = `http://127.0.0.1:${promPort}`;
  for (let i = 0; ; i++) {
    assert.equal(prom.exitCode, null, `prometheus exited: ${promLog()}`);
    const ready = await fetch(`${api}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    assert.ok(i < 200, `prometheus not ready after 20 s: ${promLog()}`);
    await sleep(100);
  }

  // 3. The run: coordinator on port P, worker i on P+1+i; they linger so the last scrapes see final values.
  const base = await freePorts(3);
  const run = spawn(process.execPath, [CLI, 'local', join(dir, 'job.yaml'), '--workers', '2', '--metrics-port-base', String(base)], {
    env: { ...process.env, RINGTUNE_LINGER_MS: '6000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(run);
  const runLog = track(run);
  const code = await new Promise<number | null>((done) => run.once('exit', (c) => done(c)));
  assert.equal(code, 0, `ringtune local failed:\n${runLog()}`);

  // 4. Every target was scraped. Series go stale once the processes exit, so queries are evaluated at
  //    the last moment all three targets were still up.
  const up = await promApi(api, '/api/v1/query', { query: `up{job="${JOB}"}[10m]` });
  const instances = up.result.map((r) => r.metric.instance).sort();
  assert.deepEqual(instances, [base, base + 1, base + 2].map((p) => `127.0.0.1:${p}`), `targets scraped: ${instances.join(', ')}`);
  const lastUp = up.result.map((r) => Math.max(...r.values!.filter(([, v]) => v === '1').map(([ts]) => ts)));
  const at = String(Math.min(...lastUp));
  const roles = up.result.map((r) => r.metric.role).sort();
  assert.deepEqual(roles, ['coordinator', 'worker', 'worker'], 'file_sd labels');

  // 5. Every dashboard expression, Grafana variables replaced, returns at least one finite sample.
  const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));
  const failures: string[] = [];
  for (const q of dashboardQueries(dashboard)) {
    const expr = q.expr.replaceAll('$job', JOB).replaceAll('$__rate_interval', '10m').replaceAll('$__interval', '10m').replaceAll('$__range', '10m');
    assert.ok(!expr.includes('$'), `${q.where}: unreplaced variable in ${expr}`);
    const data = await promApi(api, '/api/v1/query', { query: expr, time: at });
    const finite = data.result.filter((r) => Number.isFinite(Number(r.value?.[1])));
    if (finite.length === 0) failures.push(`${q.where}: ${expr} -> ${JSON.stringify(data.result)}`);
  }
  assert.deepEqual(failures, [], `dashboard queries without data (run log tail:\n${runLog().slice(-3000)})`);

  // The numbers are the run's: 10 steps, ranks 0 and 1, two workers alive.
  const value = async (expr: string) => (await promApi(api, '/api/v1/query', { query: expr, time: at })).result.map((r) => [r.metric.rank ?? '', Number(r.value![1])]);
  assert.deepEqual(await value(`ringtune_step{job="${JOB}"}`), [['', 10]]);
  assert.deepEqual((await value(`ringtune_worker_step{job="${JOB}"}`)).sort(), [['0', 10], ['1', 10]]);
  assert.deepEqual(await value(`ringtune_world_size{job="${JOB}"}`), [['', 2]]);
  assert.deepEqual(await value(`ringtune_replica_hash_checks_total{job="${JOB}", result="mismatch"}`), [['', 0]]);
  assert.deepEqual(await value(`sum(ringtune_worker_step_duration_seconds_count{job="${JOB}"})`), [['', 20]]);

  prom.kill('SIGTERM');
});
