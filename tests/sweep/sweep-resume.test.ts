/**
 * `ringtune sweep` over a grid of learning rates, trials as real `ringtune train` child processes on a
 * tiny GPT-2 and the fixture grammar. The learning rate has a monotone effect over these few steps
 * (1e-5 barely moves the loss, 1e-2 lowers it most), so the best trial is known in advance.
 * The sweep is stopped twice: Ctrl-C (SIGINT) during trial 2, after its first checkpoint (the trial
 * checkpoints and the sweep exits 130), then, resumed, killed outright (SIGKILL) during trial 3.
 * Each --resume runs no finished trial again; trial 2 continues from its checkpoint; the known best
 * ends up linked as best/.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CLI, jsonLines, setup, sweepCli, waitGone } from './helpers.ts';

/** Runs `ringtune sweep args`, calling `onLine` with each stderr line; resolves with the exit code and output. */
async function sweepWatched(args: string[], onLine: (line: string, child: ChildProcess) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'sweep', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout!.on('data', (b) => { stdout += b; });
  const lines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => { lines.push(l); onLine(l, child); });
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  return { code, stdout, stderr: lines.join('\n') };
}

test('grid: Ctrl-C and a crash mid-sweep; --resume runs no finished trial again and the known best lr wins; best/ links its model', async (t) => {
  const dir = await setup(t, ['space:', '  training.lr: [0.00001, 0.001, 0.01]', 'metric: eval_loss']);
  const out = join(dir, 'sw');
  const file = join(dir, 'sweep.yaml');

  // 1. Ctrl-C once trial 2 has written its first checkpoint (step 3 of 6).
  let polling = false;
  const first = await sweepWatched([file], (l, child) => {
    if (polling || !/^\[sweep\] trial-0002 \(2\/3\)/.test(l)) return;
    polling = true;
    const poll = setInterval(() => void access(join(out, 'trial-0002', 'checkpoints', 'latest')).then(() => {
      clearInterval(poll);
      child.kill('SIGINT');
    }, () => undefined), 20);
  });
  assert.equal(first.code, 130, first.stderr);
  assert.match(first.stderr, /\[sweep\] trial-0001: loss [\d.]+ after 6 steps/);
  assert.match(first.stderr, /\[trial-0002\] \[ringtune\] stopped by SIGTERM at step \d; checkpoint \S+; resume with --resume/);
  assert.match(first.stderr, new RegExp(`\\[sweep\\] stopped \\(SIGINT\\); continue with: ringtune sweep ${file} --resume`));
  assert.match(first.stdout, /^\d\s+trial-0002\s+interrupted\s/m);
  assert.match(first.stdout, /^\d\s+trial-0003\s+pending\s/m);
  const trial1 = await stat(join(out, 'trial-0001', 'final', 'model.safetensors'));

  // 2. Resumed, then killed outright while trial 3 runs; its orphaned trial exits by itself.
  const second = await sweepWatched([file, '--resume'], (l, child) => {
    if (/^\[trial-0003\] .*step 0 eval/.test(l)) child.kill('SIGKILL');
  });
  assert.equal(second.code, null);
  assert.match(second.stderr, /\[sweep\] trial-0001: done in an earlier run of this sweep \(loss [\d.]+\), not run again/);
  assert.match(second.stderr, /\[trial-0002\] \[ringtune\] resuming from step [3-6] \(checkpoint /);
  assert.match(second.stderr, /\[sweep\] trial-0002: loss [\d.]+ after 6 steps/);
  await waitGone(join(out, 'trial-0003', 'job.yaml'));
  const trial2 = await stat(join(out, 'trial-0002', 'final', 'model.safetensors'));

  const again = sweepCli([file]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, new RegExp(`error: ${out} already holds a sweep \\(sweep-state\\.json, sweep\\.html, sweep\\.jsonl, trial-0001, trial-0002, trial-0003\\): pass --resume`));

  // 3. Resumed to the end.
  const resumed = sweepCli([file, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  for (const id of ['trial-0001', 'trial-0002']) assert.match(resumed.stderr, new RegExp(`\\[sweep\\] ${id}: done in an earlier run of this sweep`));
  assert.equal((await stat(join(out, 'trial-0001', 'final', 'model.safetensors'))).mtimeMs, trial1.mtimeMs, 'trial-0001 was not trained again');
  assert.equal((await stat(join(out, 'trial-0002', 'final', 'model.safetensors'))).mtimeMs, trial2.mtimeMs, 'trial-0002 was not trained again');
  const events = await jsonLines(join(out, 'sweep.jsonl'));
  const ends = events.filter((e) => e.event === 'end');
  assert.deepEqual(ends.map((e) => e.trial), ['trial-0001', 'trial-0002', 'trial-0003']);
  assert.deepEqual(events.filter((e) => e.event === 'start').map((e) => e.trial), ['trial-0001', 'trial-0002', 'trial-0002', 'trial-0003', 'trial-0003']);
  assert.deepEqual(events.filter((e) => e.event === 'interrupted').map((e) => e.trial), ['trial-0002'], 'the SIGKILL left no line: the start without an end says it');

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

