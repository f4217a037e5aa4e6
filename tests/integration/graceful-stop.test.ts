/**
 * SIGTERM to `ringtune local`: every rank stops after the same step (the vote travels in that step's
 * all-reduce, so no rank is left waiting in the ring), rank 0 writes a checkpoint of that step, the
 * run says where it stopped and how to resume, and every process exits.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { history, makeJob, startLocal } from './cluster-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGTERM to ringtune local: all ranks stop after one agreed step, with a checkpoint of it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-stop-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeJob(dir, 'stopjob', { workers: 2, maxSteps: 400, checkpointEvery: 50 });
  const run = startLocal(job);
  t.after(() => run.child.kill('SIGKILL'));
  const end = Date.now() + 120_000;
  while (!/\[coordinator\] step \d+\/400/.test(run.output())) {
    assert.ok(Date.now() < end, run.output().slice(-2000));
    await sleep(25);
  }
  run.child.kill('SIGTERM');
  const code = await Promise.race([run.exit, sleep(90_000).then(() => -1)]);
  const out = run.output();
  assert.notEqual(code, -1, out.slice(-3000));
  assert.notEqual(code, 0);
  const m = /\[coordinator\] stopped on request after step (\d+); checkpoint (\S+); resume with --resume/.exec(out);
  assert.ok(m, out.slice(-3000));
  const step = Number(m[1]);
  assert.ok(step > 0 && step < 400);
  for (const rank of [0, 1]) assert.match(out, new RegExp(`rank ${rank}: stopped on request after step ${step}\\b`));
  const ckpt = join(dir, 'out-stopjob', 'checkpoints');
  assert.equal((await readFile(join(ckpt, 'latest'), 'utf8')).trim(), `step-${String(step).padStart(8, '0')}`);
  assert.equal(JSON.parse(await readFile(join(ckpt, `step-${String(step).padStart(8, '0')}`, 'trainer_state.json'), 'utf8')).step, step);
  const steps = (await history(join(dir, 'out-stopjob'))).filter((h) => h.type === 'train').map((h) => Number(h.step));
  assert.equal(Math.max(...steps), step);
  assert.doesNotMatch(out, /PeerLostError|CollectiveTimeoutError|failed after step/);
});
