/**
 * End to end: a real Prometheus (Debian's /usr/bin/prometheus) scrapes a short `ringtune local` run
 * (coordinator + 2 workers) through deploy/prometheus/prometheus.yml and the file_sd targets file the
 * run writes, and every PromQL expression of the Grafana dashboard returns data through Prometheus'
 * HTTP API, with Grafana's variables and intervals computed as Grafana computes them at the shipped scrape interval.
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

test('Prometheus scrapes a ringtune local run and every dashboard query returns data', { timeout: 240_000 }, async (t) => {
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
    '  max_steps: 100000', // stopped by SIGTERM once Prometheus has seen enough of it (below): time, not steps, decides
    '  global_batch: 4',
    '  micro_batch: 2',
    '  lr: 0.001',
    '  schedule: constant',
    'checkpoint:',
    '  every_n_steps: 25',
    '  keep: 2',
    'eval:',
    '  every_n_steps: 30',
    '  max_batches: 2',
    'output: out',
    '',
  ].join('\n'));

  // 2. Prometheus on deploy/prometheus/prometheus.yml at its shipped scrape interval, started first so
  //    it sees the targets file appear (file_sd refresh shortened: it only delays the first scrape).
  const output = join(dir, 'out');
  const shipped = readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
  const scrapeSeconds = Number(/scrape_interval: (\d+)s/.exec(shipped)![1]);
  const config = shipped.replaceAll('__RINGTUNE_OUTPUT__', output).replace(/refresh_interval: \S+/, 'refresh_interval: 1s');
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
    env: { ...process.env, RINGTUNE_LINGER_MS: String(3 * scrapeSeconds * 1000) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(run);
  const runLog = track(run);
  const exited = new Promise<number | null>((done) => run.once('exit', (c) => done(c)));
  // Rates need two differing samples inside a window, and a fast machine trains a tiny model in less
  // than one scrape interval: train until every worker was scraped 6 times past step 60 (two evals and
  // two checkpoints behind it), then stop the run as a user would (SIGTERM: all ranks stop after one
  // agreed step, exit 143).
  const enough = `count_over_time(ringtune_worker_step{ringtune_job="${JOB}"}[10m]) >= 6 and ringtune_worker_step{ringtune_job="${JOB}"} > 60`;
  for (let i = 0; ; i++) {
    assert.equal(run.exitCode, null, `ringtune local ended before it was stopped:\n${runLog()}`);
    const ok = await promApi(api, '/api/v1/query', { query: enough }).then((d) => d.result.length === 2, () => false);
    if (ok) break;
    assert.ok(i < 240, `Prometheus did not see 6 scrapes of both workers past step 60 within 120 s:\n${runLog().slice(-2000)}`);
    await sleep(500);
  }
  run.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 143, `ringtune local did not stop on SIGTERM as documented:\n${runLog()}`);
  const steps = Number(/stopped on request after step (\d+)/.exec(runLog())?.[1]);
  assert.ok(steps > 60, `the run's last step: ${runLog().slice(-2000)}`);

  // 4. Every target was scraped. Series go stale once the processes exit, so queries are evaluated at
  //    the last moment all three targets were still up.
  const up = await promApi(api, '/api/v1/query', { query: `up{job="${JOB}"}[10m]` });
  const instances = up.result.map((r) => r.metric.instance).sort();
  assert.deepEqual(instances, [base, base + 1, base + 2].map((p) => `127.0.0.1:${p}`), `targets scraped: ${instances.join(', ')}`);
  const lastUp = up.result.map((r) => Math.max(...r.values!.filter(([, v]) => v === '1').map(([ts]) => ts)));
  const firstUp = up.result.map((r) => Math.min(...r.values!.filter(([, v]) => v === '1').map(([ts]) => ts)));
  const at = String(Math.min(...lastUp));
  const from = Math.max(...firstUp);
  const roles = up.result.map((r) => r.metric.role).sort();
  assert.deepEqual(roles, ['coordinator', 'worker', 'worker'], 'file_sd labels');

  // 5. Every dashboard panel and annotation, drawn over the run as Grafana would, shows data. Grafana's
  //    interval rules: $__interval = range / max data points, at least the datasource's timeInterval
  //    (the scrape interval); $__rate_interval = max($__interval + scrape, 4 x scrape).
  const ds = (await import('yaml')).parse(readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yaml'), 'utf8'));
  const minInterval = Number(/^(\d+)s$/.exec(ds.datasources[0].jsonData.timeInterval)![1]);
  assert.equal(minInterval, scrapeSeconds, 'datasource timeInterval vs the shipped scrape interval');
  const rangeSeconds = Number(at) - from;
  const interval = Math.max(minInterval, Math.ceil(rangeSeconds / 1000));
  const rateInterval = Math.max(interval + scrapeSeconds, 4 * scrapeSeconds);
  const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));
  const panels = new Map<string, boolean>(); // panel (or annotation) -> some target drew a finite point
  for (const q of dashboardQueries(dashboard)) {
    const expr = q.expr.replaceAll('$job', JOB).replaceAll('$rank', '.*').replaceAll('$__rate_interval', `${rateInterval}s`)
      .replaceAll('$__interval', `${interval}s`).replaceAll('$__range', `${Math.ceil(rangeSeconds)}s`);
    assert.ok(!expr.includes('$'), `${q.where}: unreplaced variable in ${expr}`);
    const data = await promApi(api, '/api/v1/query_range', { query: expr, start: String(from), end: at, step: `${interval}s` });
    const drawn = data.result.some((r) => (r.values ?? []).some(([, v]) => Number.isFinite(Number(v))));
    const panel = q.where.replace(/ [A-Z]$/, '');
    panels.set(panel, (panels.get(panel) ?? false) || drawn);
  }
  const empty = [...panels].filter(([, drawn]) => !drawn).map(([p]) => p);
  assert.deepEqual(empty, [], `empty panels at scrape ${scrapeSeconds}s, $__interval ${interval}s, $__rate_interval ${rateInterval}s (run log tail:\n${runLog().slice(-3000)})`);

  // The numbers are the run's: `steps` steps, ranks 0 and 1, two workers alive.
  const value = async (expr: string) => (await promApi(api, '/api/v1/query', { query: expr, time: at })).result.map((r) => [r.metric.rank ?? '', Number(r.value![1])]);
  assert.deepEqual(await value(`ringtune_step{ringtune_job="${JOB}"}`), [['', steps]]);
  assert.deepEqual((await value(`ringtune_worker_step{ringtune_job="${JOB}"}`)).sort(), [['0', steps], ['1', steps]]);
  assert.deepEqual(await value(`ringtune_world_size{ringtune_job="${JOB}"}`), [['', 2]]);
  assert.deepEqual(await value(`ringtune_replica_hash_checks_total{ringtune_job="${JOB}", result="mismatch"}`), [['', 0]]);
  assert.deepEqual(await value(`sum(ringtune_worker_step_duration_seconds_count{ringtune_job="${JOB}"})`), [['', 2 * steps]]);

  // The picture in docs/deploy.md: scripts/render-dashboard.mjs draws the main panels from this
  // Prometheus over the same span, and says (exit 1) if one is empty.
  const svgFile = join(dir, 'dashboard.svg');
  const render = execFileSync(process.execPath, [join(ROOT, 'scripts/render-dashboard.mjs'), '--prometheus', api, '--job', JOB, '--out', svgFile,
    '--from', String(from), '--to', at], { encoding: 'utf8' });
  assert.match(render, /: 12 panels, \d+ s of job dash-e2e\n$/);
  const svg = readFileSync(svgFile, 'utf8');
  assert.equal([...svg.matchAll(/<path d="M/g)].length >= 20, true, 'the time series panels drew lines');
  assert.ok(svg.includes(`>${steps}</text>`), `the step stat shows the run's last step ${steps}`);
  assert.ok(!svg.includes('No data'));

  prom.kill('SIGTERM');
});
