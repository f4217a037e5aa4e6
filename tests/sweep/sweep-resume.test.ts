/**
 * `ringtune sweep` over a grid of learning rates, trials as real `ringtune train` child processes on a
 * tiny GPT-2 and the fixture grammar. The learning rate has a monotone effect over these few steps
 * (1e-5 barely moves the loss, 1e-2 lowers it most), so the best trial is known in advance. The sweep
 * is killed (SIGKILL) during its second trial; --resume does not run the finished trial again,
 * re-runs the interrupted one, and ends with the known best linked as best/.
 */
import assert from 'node:assert/strict';
import { readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI, jsonLines, setup, sweepCli, waitGone } from './helpers.ts';

test('grid: killed mid-sweep, --resume skips the finished trial and the known best lr wins; best/ links its model', async (t) => {
  const dir = await setup(t, ['space:', '  training.lr: [0.00001, 0.001, 0.01]', 'metric: eval_loss']);
  const out = join(dir, 'sw');
  const sweep = spawn(process.execPath, [CLI, 'sweep', join(dir, 'sweep.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  createInterface({ input: sweep.stderr }).on('line', (l) => {
    log.push(l);
    if (/^\[trial-0002\] .*step 0 eval/.test(l)) sweep.kill('SIGKILL');
  });
  await new Promise((r) => sweep.once('exit', r));
  assert.match(log.join('\n'), /\[sweep\] trial-0001: loss [\d.]+ after 6 steps/);
  await waitGone(join(out, 'trial-0002', 'job.yaml'));
  const first = await stat(join(out, 'trial-0001', 'final', 'model.safetensors'));

  const again = sweepCli([join(dir, 'sweep.yaml')]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, new RegExp(`error: ${out} already holds a sweep \\(sweep-state\\.json, sweep\\.html, sweep\\.jsonl, trial-0001, trial-0002\\): pass --resume`));

  const resumed = sweepCli([join(dir, 'sweep.yaml'), '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /\[sweep\] trial-0001: done in an earlier run of this sweep \(loss [\d.]+\), not run again/);
  assert.equal((await stat(join(out, 'trial-0001', 'final', 'model.safetensors'))).mtimeMs, first.mtimeMs, 'trial-0001 was not trained again');
  const events = await jsonLines(join(out, 'sweep.jsonl'));
  const ends = events.filter((e) => e.event === 'end');
  assert.deepEqual(ends.map((e) => e.trial), ['trial-0001', 'trial-0002', 'trial-0003']);
  assert.deepEqual(events.filter((e) => e.event === 'start').map((e) => e.trial), ['trial-0001', 'trial-0002', 'trial-0002', 'trial-0003']);

  // Each trial's metric is its own final evaluation (eval_report.json), and lr orders them as expected.
  for (const e of ends) {
    const report = JSON.parse(await readFile(join(out, e.trial, 'eval_report.json'), 'utf8'));
    assert.equal(e.metric, report.final_eval.loss);
    assert.equal(e.status, 'done');
    assert.deepEqual(e.curve.train_loss.map((p: number[]) => p[0]), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(e.curve.metric.map((p: number[]) => p[0]), [0, 6]);
  }
  const [slow, mid, fast] = ends.map((e) => e.metric);
  assert.ok(slow > mid && mid > fast, `losses by lr 1e-5, 1e-3, 1e-2: ${slow}, ${mid}, ${fast}`);
  const table = resumed.stdout.split('\n');
  assert.match(table[0], /^#\s+trial\s+status\s+steps\s+loss \(min\)\s+training\.lr$/);
  assert.deepEqual(table.slice(2, 5).map((l) => l.split(/\s+/)[1]), ['trial-0003', 'trial-0002', 'trial-0001']);
  assert.match(resumed.stdout, new RegExp(`best: trial-0003 \\(loss [\\d.]+\\); model: ${out}/best -> trial-0003/final \\(symlink\\)`));
  assert.equal(await readlink(join(out, 'best')), 'trial-0003/final');
  assert.ok((await stat(join(out, 'best', 'model.safetensors'))).isFile());
  const state = JSON.parse(await readFile(join(out, 'sweep-state.json'), 'utf8'));
  assert.equal(state.status, 'done');
  assert.equal(state.best, 'trial-0003');
  const html = await readFile(join(out, 'sweep.html'), 'utf8');
  for (const id of ['trial-0001', 'trial-0002', 'trial-0003']) assert.ok(html.includes(`<a href="${id}/report.html">${id}</a>`), id);
  assert.equal((html.match(/<path d="M/g) ?? []).length, 6, 'a metric curve and a train loss curve per trial');
  assert.doesNotMatch(html, /<script|(src|href)="https?:/, 'self-contained');

  // A different sweep in the same directory is refused, naming what changed.
  await writeFile(join(dir, 'sweep.yaml'), ['base: job.yaml', 'output: sw', 'space:', '  training.lr: [0.00001, 0.01]', 'metric: eval_loss', ''].join('\n'));
  const changed = sweepCli([join(dir, 'sweep.yaml'), '--resume']);
  assert.equal(changed.status, 1);
  assert.match(changed.stderr, /--resume: the sweep in .* was started with a different definition \(changed: space, configs\)/);
});

