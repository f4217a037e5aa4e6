/**
 * `ringtune sweep` with strategy asha (trials as real `ringtune train` child processes): the best of
 * the first rung continue from their own checkpoints, the others are pruned at min_steps; the
 * decision is the halving rule applied to the logged metrics. And strategy random through the CLI:
 * the seed names the trials.
 */
import assert from 'node:assert/strict';
import { readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promote } from '../../src/sweep/halving.ts';
import { randomPoints, parseDimension, type Dimension } from '../../src/sweep/space.ts';
import { loadSweepFile } from '../../src/sweep/sweep-spec.ts';
import { jsonLines, setup, sweepCli } from './helpers.ts';

test('asha: the best of the first rung continues from its own checkpoint, the rest are pruned at min_steps', async (t) => {
  // 3 configurations, eta 2: floor(3 / 2) = 1 continues. The lr effect is monotone here (sweep-resume.test.ts), so it is 1e-2's.
  const dir = await setup(t, ['strategy: asha', 'min_steps: 3', 'max_steps: 6', 'reduction_factor: 2', 'space:', '  training.lr: [0.00001, 0.001, 0.01]']);
  const out = join(dir, 'sw');
  const r = sweepCli([join(dir, 'sweep.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  const events = await jsonLines(join(out, 'sweep.jsonl'));
  const rung0 = events.filter((e) => e.event === 'end' && e.rung === 0);
  assert.deepEqual(rung0.map((e) => [e.trial, e.steps]), [['trial-0001', 3], ['trial-0002', 3], ['trial-0003', 3]]);
  const decision = events.find((e) => e.event === 'promote');
  assert.deepEqual(decision, { event: 'promote', rung: 0, promoted: ['trial-0003'], pruned: ['trial-0001', 'trial-0002'] });
  // The decision is the halving rule applied to the logged rung metrics (nothing else goes in).
  assert.deepEqual(promote(rung0.map((e) => ({ id: e.trial, metric: e.metric })), 2, 'min').map((x) => x.id), decision.promoted);
  assert.deepEqual(events.filter((e) => e.event === 'end' && e.rung === 1).map((e) => [e.trial, e.steps]), [['trial-0003', 6]]);
  assert.match(r.stderr, new RegExp(`\\[trial-0003\\] \\[ringtune\\] resuming from step 3 \\(checkpoint ${out}/trial-0003/checkpoints/step-00000003\\)`));
  const history = await jsonLines(join(out, 'trial-0003', 'metrics.jsonl'));
  assert.deepEqual(history.filter((h) => h.type === 'train').map((h) => h.step), [1, 2, 3, 4, 5, 6], 'steps 1-3 kept, 4-6 continued');
  assert.deepEqual(history.filter((h) => h.type === 'eval').map((h) => h.step), [0, 3, 6]);
  for (const id of ['trial-0001', 'trial-0002']) {
    assert.match(await readFile(join(out, id, 'job.yaml'), 'utf8'), /max_steps: 3\n/);
    assert.ok(!(await jsonLines(join(out, id, 'metrics.jsonl'))).some((h) => h.step > 3), `${id} stopped at min_steps`);
  }
  const state = JSON.parse(await readFile(join(out, 'sweep-state.json'), 'utf8'));
  assert.deepEqual(state.trials.map((x: { id: string; status: string; steps: number }) => [x.id, x.status, x.steps]),
    [['trial-0003', 'done', 6], ['trial-0002', 'pruned', 3], ['trial-0001', 'pruned', 3]]);
  assert.equal(await readlink(join(out, 'best')), 'trial-0003/final');
  assert.match(r.stdout, /^1\s+trial-0003\s+done\s+6\s/m);
  assert.match(r.stdout, /^3\s+trial-0001\s+pruned\s+3\s/m);
});

test('random: the CLI runs the trials the seed names (those of the seeded sampler); another seed names others', async (t) => {
  const dir = await setup(t, []);
  const file = join(dir, 'sweep.yaml');
  const sweepText = (seed: number) => ['base: job.yaml', 'strategy: random', `seed: ${seed}`, 'trials: 5', 'space:',
    '  training.lr: {log_uniform: [0.00001, 0.01]}', '  training.warmup_steps: {int_uniform: [0, 3]}', ''].join('\n');
  await writeFile(file, sweepText(5));
  const r = sweepCli([file, '--dry-run']);
  assert.equal(r.status, 0, r.stderr);
  const planned = JSON.parse(r.stdout);
  const dim = (v: unknown) => parseDimension(v) as Dimension;
  const expected = randomPoints([{ key: 'training.lr', dim: dim({ log_uniform: [1e-5, 1e-2] }) }, { key: 'training.warmup_steps', dim: dim({ int_uniform: [0, 3] }) }], 5, 5);
  assert.deepEqual(planned.trials.map((x: { params: unknown }) => x.params), expected);
  assert.deepEqual(planned.trials.map((x: { id: string }) => x.id), ['trial-0001', 'trial-0002', 'trial-0003', 'trial-0004', 'trial-0005']);
  assert.deepEqual((await loadSweepFile(file)).configs, expected, 'the same file plans the same trials again');
  await writeFile(file, sweepText(6));
  assert.notDeepEqual((await loadSweepFile(file)).configs, expected);
  await assert.rejects(stat(join(dir, 'sw')), 'a dry run writes nothing');
});

test('a trial that fails is recorded with its error and the sweep goes on; the best is among the finished', async (t) => {
  // global_batch 1000 passes the job schema but not the data check of `ringtune train` (40 examples).
  const dir = await setup(t, ['space:', '  training.global_batch: [1000, 4]', '  training.max_steps: [2]']);
  const out = join(dir, 'sw');
  const r = sweepCli([join(dir, 'sweep.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /\[sweep\] trial-0001: failed: .*global.?batch.* \([\d.]+ s\)/i);
  const ends = (await jsonLines(join(out, 'sweep.jsonl'))).filter((e) => e.event === 'end');
  assert.deepEqual(ends.map((e) => [e.trial, e.status]), [['trial-0001', 'failed'], ['trial-0002', 'done']]);
  assert.equal(ends[0].metric, undefined);
  assert.match(ends[0].error, /global.?batch/i);
  assert.match(r.stdout, /^1\s+trial-0002\s+done\s+2\s/m);
  assert.match(r.stdout, /^2\s+trial-0001\s+failed\s+0\s+-\s+1000/m);
  assert.equal(await readlink(join(out, 'best')), 'trial-0002/final');
});
