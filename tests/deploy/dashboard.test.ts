/**
 * The Grafana dashboard and the Prometheus config, offline: every PromQL expression names only metrics
 * that src/metrics/metrics.ts registers and parses as PromQL (promtool, from Debian's `prometheus`);
 * panels are shaped as Grafana expects (datasource variable, targets with expr and refId, a grid
 * without overlaps). tests/deploy/prometheus-e2e.test.ts runs the same expressions against real data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CoordinatorMetrics, METRIC_NAMES, WorkerMetrics } from '../../src/metrics/metrics.ts';
import { DASHBOARD_PATH, dashboardQueries, metricNamesIn } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
/** Names a scrape of ringtune exposes: registered metrics, plus _bucket/_sum/_count of histograms. */
function exposedNames(): Set<string> {
  const names = new Set<string>();
  for (const m of [new WorkerMetrics({ job: 'j', rank: 0, backend: 'cpu' }), new CoordinatorMetrics({ job: 'j' })]) {
    for (const metric of m.registry.getMetricsAsArray()) {
      const { name, type } = metric as unknown as { name: string; type: string };
      names.add(name);
      if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    }
  }
  return names;
}

const dashboard = (): Obj => JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));

test('metricNamesIn finds metric names and nothing else', () => {
  assert.deepEqual(metricNamesIn('histogram_quantile(0.9, sum by (le, rank) (rate(a_bucket{job="$job", x=~"b|c"}[$__rate_interval])))'), ['a_bucket']);
  assert.deepEqual(metricNamesIn('x_total{result="mismatch"} > 0 and on (job) y == 1'), ['x_total', 'y']);
  assert.deepEqual(metricNamesIn('sum without (rank) (rate(z[5m] offset 1h)) / ignoring(le) w'), ['z', 'w']);
});

test('dashboard PromQL references only metrics declared in src/metrics/metrics.ts', () => {
  const exposed = exposedNames();
  const ours = new Set<string>(Object.values(METRIC_NAMES));
  const queries = dashboardQueries(dashboard());
  assert.ok(queries.length >= 20, `only ${queries.length} queries`);
  const used = new Set<string>();
  for (const q of queries) {
    const names = metricNamesIn(q.expr);
    assert.ok(names.length > 0, `${q.where}: no metric in ${q.expr}`);
    for (const n of names) {
      assert.ok(exposed.has(n), `${q.where}: ${n} is not a metric ringtune exposes`);
      used.add(ours.has(n) ? n : n.replace(/_(bucket|sum|count)$/, ''));
    }
  }
  // Every ringtune metric is on the dashboard somewhere (process metrics are not required), except
  // these: the same number on every rank as the coordinator's, or shown as an annotation.
  const notOnDashboard = ['ringtune_worker_learning_rate', 'ringtune_worker_grad_norm', 'ringtune_eval_last_timestamp_seconds'];
  const missing = [...ours].filter((n) => !used.has(n) && !notOnDashboard.includes(n));
  assert.deepEqual(missing, [], 'metrics declared but not on the dashboard');
});

test('dashboard is Grafana-shaped: datasource variable on every panel and target, unique ids, a grid without overlaps', () => {
  const d = dashboard();
  assert.equal(typeof d.uid, 'string');
  assert.equal(typeof d.title, 'string');
  assert.equal(typeof d.schemaVersion, 'number');
  const vars: Obj[] = d.templating.list;
  const dsVar = vars.find((v) => v.type === 'datasource');
  assert.ok(dsVar, 'no datasource variable');
  assert.equal(dsVar.query, 'prometheus');
  const ds = { type: 'prometheus', uid: `\${${dsVar.name}}` };
  const builtins = ['__rate_interval', '__interval', '__range'];
  const varNames = new Set([...vars.map((v) => v.name), ...builtins]);
  for (const v of vars.filter((x) => x.type === 'query')) assert.deepEqual(v.datasource, ds, `variable ${v.name}`);
  for (const a of d.annotations.list) assert.deepEqual(a.datasource, ds, `annotation ${a.name}`);

  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const p of d.panels as Obj[]) {
    assert.equal(typeof p.id, 'number');
    assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`);
    ids.add(p.id);
    assert.ok(['row', 'timeseries', 'stat', 'table', 'gauge', 'bargauge'].includes(p.type), `${p.title}: panel type ${p.type}`);
    assert.ok(p.title, `panel ${p.id} has no title`);
    const { x, y, w, h } = p.gridPos;
    assert.ok([x, y, w, h].every(Number.isInteger) && w > 0 && h > 0 && x >= 0 && x + w <= 24, `${p.title}: gridPos`);
    for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
      assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel at ${i},${j}`);
      cells.add(`${i},${j}`);
    }
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, ds, `${p.title}: datasource`);
    assert.ok(p.targets.length > 0, `${p.title}: no targets`);
    const refIds = new Set<string>();
    for (const t of p.targets as Obj[]) {
      assert.deepEqual(t.datasource, ds, `${p.title} ${t.refId}: datasource`);
      assert.ok(typeof t.refId === 'string' && !refIds.has(t.refId), `${p.title}: refId ${t.refId}`);
      refIds.add(t.refId);
      assert.ok(typeof t.expr === 'string' && t.expr.length > 0);
    }
  }
  for (const q of dashboardQueries(d)) {
    for (const [, v] of q.expr.matchAll(/\$\{?(\w+)\}?/g)) assert.ok(varNames.has(v), `${q.where}: unknown variable $${v}`);
  }
});

test('dashboard covers the issue: loss, eval, tokens/s per worker and total, quantiles, bandwidth, workers, checkpoint/eval events', () => {
  const d = dashboard();
  const exprs = dashboardQueries(d).map((q) => q.expr.replace(/\s+/g, ' '));
  const has = (re: RegExp) => assert.ok(exprs.some((e) => re.test(e)), `no query matches ${re}`);
  has(/^ringtune_loss\{/);
  has(/^ringtune_eval_loss\{/);
  has(/^ringtune_eval_score_ratio\{/);
  has(/^sum by \(rank\) \(rate\(ringtune_worker_input_tokens_total\{.*\[\$__rate_interval\]\)\)$/);
  has(/^rate\(ringtune_input_tokens_total\{/);
  has(/ringtune_step\{.*\} \/ ringtune_total_steps\{/); // progress
  has(/ringtune_worker_allreduce_duration_seconds_sum.*\/.*ringtune_worker_step_duration_seconds_sum/); // communication share
  has(/^ringtune_worker_heartbeat_age_seconds\{/);
  has(/^histogram_quantile\(0\.9, sum by \(le\) \(rate\(ringtune_worker_step_duration_seconds_bucket\{/);
  has(/^histogram_quantile\(0\.9, sum by \(le\) \(rate\(ringtune_worker_allreduce_duration_seconds_bucket\{/);
  has(/rate\(ringtune_worker_allreduce_sent_bytes_total.*\/ sum by \(rank\) \(rate\(ringtune_worker_allreduce_duration_seconds_sum/); // bus bandwidth from counters
  // No last-step rate gauges, no `job` label (Prometheus' own), no changes() over $__interval (misses events).
  for (const e of exprs) assert.doesNotMatch(e, /_per_second\b|\bjob=|changes\(/, e);
  // Rows, a rank variable, the LR on its own axis.
  assert.deepEqual((d.panels as Obj[]).filter((p) => p.type === 'row').map((p) => p.title), ['Progress', 'Throughput', 'Communication', 'Health', 'Resources']);
  assert.ok((d.templating.list as Obj[]).some((v) => v.name === 'rank' && v.includeAll && v.multi));
  const lrPanel = (d.panels as Obj[]).find((p) => (p.targets ?? []).some((t: Obj) => t.expr.startsWith('ringtune_learning_rate')));
  assert.ok(lrPanel?.fieldConfig.overrides.some((o: Obj) => o.matcher.options === 'lr' && o.properties.some((x: Obj) => x.id === 'custom.axisPlacement')));
  has(/^ringtune_workers_alive\{/);
  const annotations = (d.annotations.list as Obj[]).map((a) => a.expr as string);
  assert.ok(annotations.some((e) => e.includes('ringtune_checkpoints_total')));
  assert.ok(annotations.some((e) => e.includes('ringtune_eval_runs_total')));
});

test('every dashboard expression parses as PromQL (promtool check rules)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-promql-'));
  try {
    const rules = dashboardQueries(dashboard()).map((q, i) => ({
      record: `ringtune:dashboard_query:${i}`,
      expr: q.expr.replaceAll('$job', 'demo').replaceAll('$rank', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h'),
    }));
    const file = join(dir, 'rules.yml');
    writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
    const out = execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('provisioning files and prometheus.yml: a Prometheus datasource, a file dashboard provider, file_sd without honor_labels (series name the job in ringtune_job)', () => {
  const dsFile = parseYaml(readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yaml'), 'utf8'));
  assert.equal(dsFile.apiVersion, 1);
  assert.equal(dsFile.datasources[0].type, 'prometheus');
  const provider = parseYaml(readFileSync(join(ROOT, 'deploy/grafana/provisioning/dashboards/ringtune.yaml'), 'utf8'));
  assert.equal(provider.apiVersion, 1);
  assert.equal(provider.providers[0].type, 'file');
  assert.ok(provider.providers[0].options.path);

  const dir = mkdtempSync(join(tmpdir(), 'ringtune-promcfg-'));
  try {
    const text = readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
    assert.ok(text.includes('__RINGTUNE_OUTPUT__'));
    const cfg = join(dir, 'prometheus.yml');
    writeFileSync(cfg, text.replaceAll('__RINGTUNE_OUTPUT__', dir));
    writeFileSync(join(dir, 'prometheus-targets.json'), JSON.stringify([{ targets: ['127.0.0.1:9464'], labels: { job: 'demo', role: 'coordinator' } }]));
    execFileSync('promtool', ['check', 'config', cfg], { encoding: 'utf8' });
    const [scrape] = parseYaml(text).scrape_configs;
    // Our job label is ringtune_job: Prometheus' `job` stays the scrape job's; honor_labels not needed.
    assert.notEqual(scrape.honor_labels, true);
    assert.equal(parseYaml(text).global.scrape_interval, '5s');
    // Grafana's minimum interval is the scrape interval, so $__rate_interval spans 4 scrapes.
    assert.equal(dsFile.datasources[0].jsonData.timeInterval, '5s');
    assert.equal(scrape.file_sd_configs[0].files[0], '__RINGTUNE_OUTPUT__/prometheus-targets.json');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
