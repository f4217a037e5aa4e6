/**
 * `ringtune sweep --parallel 2`: up to two `ringtune train` trials at once give the same leaderboard
 * as one after another, metric for metric (a trial's result depends on its own job only), and
 * sweep.jsonl stays one valid record per line with the driver as its only writer, even though the
 * trials' starts and ends interleave. One native thread per trial in both runs (--threads 1), so the
 * arithmetic is the same whatever the machine's load.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setup, sweepCli } from './helpers.ts';

const GRID = ['space:', '  training.lr: [0.00001, 0.001, 0.01]', 'metric: eval_loss'];

async function events(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8');
  assert.ok(text.endsWith('\n'));
  return text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('--parallel 2: the same leaderboard as sequential; sweep.jsonl interleaves whole records', async (t) => {
  const dir = await setup(t, GRID);
  const file = join(dir, 'sweep.yaml');
  const seq = sweepCli([file, '--threads', '1', '--output', join(dir, 'seq')]);
  assert.equal(seq.status, 0, seq.stderr);
  const par = sweepCli([file, '--threads', '1', '--parallel', '2', '--output', join(dir, 'par')]);
  assert.equal(par.status, 0, par.stderr);

  const ends = async (out: string) => (await events(join(dir, out, 'sweep.jsonl'))).filter((e) => e.event === 'end')
    .map((e) => ({ trial: e.trial, status: e.status, steps: e.steps, metric: e.metric, eval: e.eval, curve: e.curve }))
    .sort((a, b) => String(a.trial).localeCompare(String(b.trial)));
  assert.deepEqual(await ends('par'), await ends('seq'));
  const rows = (s: string) => s.split('\n').slice(0, 5).map((l) => l.split(/\s+/).slice(0, 5).join(' '));
  assert.deepEqual(rows(par.stdout), rows(seq.stdout));
  assert.deepEqual(rows(par.stdout).slice(2).map((r) => r.split(' ')[1]), ['trial-0003', 'trial-0002', 'trial-0001']);

  // Two at once: trial-0002 started before trial-0001 ended; each trial has exactly one start and one end.
  const log = await events(join(dir, 'par', 'sweep.jsonl'));
  const at = (event: string, trial: string) => log.findIndex((e) => e.event === event && e.trial === trial);
  assert.ok(at('start', 'trial-0002') < at('end', 'trial-0001'), JSON.stringify(log.map((e) => `${e.event} ${e.trial}`)));
  for (const id of ['trial-0001', 'trial-0002', 'trial-0003']) {
    assert.deepEqual(log.filter((e) => e.trial === id).map((e) => e.event), ['start', 'end'], id);
  }
  const state = JSON.parse(await readFile(join(dir, 'par', 'sweep-state.json'), 'utf8'));
  assert.equal(state.status, 'done');
  assert.equal(state.best, 'trial-0003');
  assert.deepEqual(state.trials.map((x: { status: string }) => x.status), ['done', 'done', 'done']);
});

test('asha --parallel 3: the rung runs all at once, promotion waits for all of it and applies the halving rule', async (t) => {
  // The same sweep as sweep-asha.test.ts (eta 2: 1 of 3 continues, the known best lr 1e-2's), its three rung-0 trials at once.
  const dir = await setup(t, ['strategy: asha', 'min_steps: 3', 'max_steps: 6', 'reduction_factor: 2', 'space:', '  training.lr: [0.00001, 0.001, 0.01]']);
  const r = sweepCli([join(dir, 'sweep.yaml'), '--threads', '1', '--parallel', '3']);
  assert.equal(r.status, 0, r.stderr);
  const log = await events(join(dir, 'sw', 'sweep.jsonl'));
  const promoteAt = log.findIndex((e) => e.event === 'promote');
  assert.deepEqual(log[promoteAt], { event: 'promote', rung: 0, promoted: ['trial-0003'], pruned: ['trial-0001', 'trial-0002'] });
  const rung0 = log.slice(0, promoteAt);
  assert.deepEqual(rung0.filter((e) => e.event === 'end').map((e) => e.trial).sort(), ['trial-0001', 'trial-0002', 'trial-0003'], 'every rung-0 trial ended before the promotion');
  assert.ok(rung0.findIndex((e) => e.event === 'end') > rung0.map((e) => e.event).lastIndexOf('start'), 'all three started before the first ended');
  assert.deepEqual(log.slice(promoteAt + 1).map((e) => `${e.event} ${e.trial} ${e.rung}`), ['start trial-0003 1', 'end trial-0003 1']);
});
