/**
 * /metrics of the coordinator and of every worker during a real local run: the documented series
 * are there with sensible values (scraped over HTTP while the processes linger after the run).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/control/nats-server.ts';
import { METRIC_NAMES } from '../../src/metrics/metrics.ts';
import { makeJob, startLocal } from './cluster-helpers.ts';

/** name{labels} value lines -> [{name, labels, value}] */
function parse(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l)!;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    return { name: m[1], labels, value: Number(m[3]) };
  });
}

async function scrape(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return parse(await res.text());
}

test('coordinator and workers expose the documented series with sensible values', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-metrics-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeJob(dir, 'metrics', { workers: 2, maxSteps: 12, checkpointEvery: 6, evalEvery: 6 });
  const base = await freePort();
  const run = startLocal(job, ['--metrics-port-base', String(base)], { RINGTUNE_LINGER_MS: '8000' });
  t.after(() => run.child.kill('SIGKILL'));
  // Wait for the run to finish (the coordinator prints its summary), then scrape while they linger.
  while (!/"final_model"/.test(run.output())) {
    assert.equal(run.child.exitCode, null, run.output());
    await new Promise((r) => setTimeout(r, 100));
  }
  const coord = await scrape(base);
  const get = (rows: typeof coord, name: string, labels: Record<string, string> = {}) =>
    rows.filter((r) => r.name === name && Object.entries(labels).every(([k, v]) => r.labels[k] === v));
  const one = (rows: typeof coord, name: string, labels: Record<string, string> = {}) => {
    const found = get(rows, name, labels);
    assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${found.length} series`);
    return found[0].value;
  };
  assert.equal(one(coord, METRIC_NAMES.step), 12);
  assert.ok(one(coord, METRIC_NAMES.loss) > 0 && one(coord, METRIC_NAMES.loss) < 10);
  assert.ok(one(coord, METRIC_NAMES.learningRate) > 0);
  assert.ok(one(coord, METRIC_NAMES.gradNorm) > 0);
  assert.ok(one(coord, METRIC_NAMES.inputTokens) > 12 * 12 * 5);
  assert.equal(one(coord, METRIC_NAMES.samples), 12 * 12);
  assert.equal(one(coord, METRIC_NAMES.totalSteps), 12);
  for (const rank of ['0', '1']) assert.ok(one(coord, METRIC_NAMES.heartbeatAge, { rank }) < 30);
  assert.equal(one(coord, METRIC_NAMES.worldSize), 2);
  assert.ok(one(coord, METRIC_NAMES.replicaHashChecks, { result: 'match' }) >= 2);
  assert.equal(get(coord, METRIC_NAMES.replicaHashChecks, { result: 'mismatch' }).reduce((a, r) => a + r.value, 0), 0);
  assert.ok(one(coord, METRIC_NAMES.evalLoss) > 0);
  assert.ok(one(coord, METRIC_NAMES.evalRuns) >= 3); // step 0, 6 and the end
  assert.ok(one(coord, METRIC_NAMES.checkpoints) >= 2);

  for (const rank of [0, 1]) {
    const w = await scrape(base + 1 + rank);
    const labels = { rank: String(rank) };
    assert.equal(one(w, METRIC_NAMES.workerStep, labels), 12);
    assert.ok(one(w, METRIC_NAMES.workerInputTokens, labels) > 0);
    assert.ok(one(w, METRIC_NAMES.workerLoss, labels) > 0);
    assert.equal(one(w, METRIC_NAMES.workerSamples, labels), 12 * 6);
    assert.equal(one(w, `${METRIC_NAMES.stepDuration}_count`, labels), 12);
    assert.equal(one(w, `${METRIC_NAMES.allreduceDuration}_count`, labels), 12);
    assert.ok(one(w, `${METRIC_NAMES.allreduceDuration}_sum`, labels) > 0);
    assert.ok(one(w, METRIC_NAMES.allreduceSentBytes, labels) > 12 * 100_000);
    assert.equal(get(w, METRIC_NAMES.backendInfo).filter((r) => r.value === 1).length, 1);
  }
  assert.equal(await run.exit, 0);
});
