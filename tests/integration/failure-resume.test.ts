/**
 * A worker killed mid-run stops the whole run within the heartbeat timeout, naming the rank and the
 * last completed step; the latest checkpoint loads; resuming from it gives the uninterrupted run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { initBackend } from '../../src/model/backend.ts';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { latestCheckpoint } from '../../src/run/trainer-state.ts';
import { readCheckpoint } from '../../src/train/checkpoint.ts';
import { history, makeJob, runLocal, startLocal, trainLosses } from './cluster-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGKILL of a worker: the run stops naming the rank; the checkpoint loads; --resume equals the uninterrupted run', async (t) => {
  await initBackend(undefined, () => {});
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-fail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const opts = { workers: 2, maxSteps: 30, globalBatch: 16, microBatch: 8, checkpointEvery: 4, heartbeatTimeoutMs: 2000 };
  const straightJob = await makeJob(dir, 'straight', opts);
  const straight = await runLocal(straightJob);
  assert.equal(straight.code, 0, straight.output);

  const job = await makeJob(dir, 'killed', opts);
  const ckptDir = join(dir, 'out-killed', 'checkpoints');
  const run = startLocal(job);
  while (!(await latestCheckpoint(ckptDir).catch(() => undefined))) {
    assert.equal(run.child.exitCode, null, `run ended before its first checkpoint:\n${run.output()}`);
    await sleep(20);
  }
  const m = /rank 1 = [^ ]+-(\d+)-[0-9a-f]+ @/.exec(run.output());
  assert.ok(m, run.output());
  const killedAt = performance.now();
  process.kill(Number(m[1]), 'SIGKILL');
  const code = await run.exit;
  const stoppedAfterMs = performance.now() - killedAt;
  assert.notEqual(code, 0);
  // Detection (ring error or heartbeat timeout) plus the processes shutting down, within the timeout.
  assert.ok(stoppedAfterMs < 2000 + 3000, `run took ${stoppedAfterMs} ms to stop`);
  const out = run.output();
  assert.match(out, /rank 1 \([^)]+\) failed after step (\d+)/);
  const lastStep = Number(/failed after step (\d+)/.exec(out)![1]);
  assert.ok(lastStep >= 4 && lastStep < 30, out);
  assert.match(out, /latest checkpoint: step \d+/);

  const latest = await latestCheckpoint(ckptDir);
  const { state, model } = await readCheckpoint(latest!, 'causal-lm');
  assert.ok(state.step >= 4 && state.step <= lastStep);
  model.dispose();

  const resumed = await runLocal(job, ['--resume']);
  assert.equal(resumed.code, 0, resumed.output);
  const a = trainLosses(await history(join(dir, 'out-straight')));
  const b = trainLosses(await history(join(dir, 'out-killed')));
  assert.equal(b.length, 30);
  b.forEach((l, i) => assert.ok(Math.abs(l - a[i]) <= 1e-6 * Math.abs(a[i]), `step ${i + 1}: ${l} vs ${a[i]}`));
  const wa = (await readModelWeights(join(dir, 'out-straight', 'final'))).tensors;
  const wb = (await readModelWeights(join(dir, 'out-killed', 'final'))).tensors;
  for (const [name, ta] of wa) assert.deepEqual(Buffer.from(wb.get(name)!.data.buffer), Buffer.from(ta.data.buffer), name);
  const report = JSON.parse(await readFile(join(dir, 'out-killed', 'eval_report.json'), 'utf8'));
  assert.equal(report.steps, 30);
});

test('workers stop by themselves when the coordinator dies mid-run', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-coorddead-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeJob(dir, 'orphans', { workers: 2, maxSteps: 400, globalBatch: 16, microBatch: 8, heartbeatTimeoutMs: 1500 });
  const run = startLocal(job);
  while (!/\[coordinator\] step \d+\/400/.test(run.output())) {
    assert.equal(run.child.exitCode, null, run.output());
    await sleep(20);
  }
  const pids = execFileSync('pgrep', ['-f', `coordinator ${job}`]).toString().trim().split('\n').map(Number);
  assert.equal(pids.length, 1);
  const killedAt = performance.now();
  process.kill(pids[0], 'SIGKILL');
  await run.exit;
  const out = run.output();
  assert.ok(performance.now() - killedAt < 2 * 1500 + 4000, `took ${performance.now() - killedAt} ms`);
  // The first worker to notice stops; its ring neighbour then sees it go (or notices itself).
  assert.match(out, /\[w[01]\] error: the coordinator has been silent/);
  assert.match(out, /\[w0\] error: /);
  assert.match(out, /\[w1\] error: /);
});
