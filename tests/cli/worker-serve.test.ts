/**
 * `ringtune worker --serve`: one supervisor, a fresh worker process per run. Against a real
 * nats-server: a sweep handed to it (`ringtune sweep --cluster`) whose first trial trains on a file
 * that is not JSON Lines fails in its worker; the supervisor backs off 1 s and its next worker trains
 * the second trial. Then SIGTERM in the middle of a run: the worker stops after its step with a
 * checkpoint (the worker's own graceful stop), and the supervisor exits 143 without starting another.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { backoffMs, childArgs, servingWorker } from '../../src/cli/worker-serve.ts';
import { newJobSecret } from '../../src/control/auth.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { CLI, jsonLines, setup, sweepCli } from '../sweep/helpers.ts';

test('childArgs drops --serve and --max-runs, keeps everything else in order', () => {
  assert.deepEqual(childArgs(['worker', '--serve', '--nats', 'nats://h:4222', '--max-runs', '3', '--job', 'j', '--max-runs=2', '--threads', '1']),
    ['worker', '--nats', 'nats://h:4222', '--job', 'j', '--threads', '1']);
});

test('RINGTUNE_WORKER_SERVE: 1 / true / yes serve, 0 / false / no / empty / unset do not, anything else is an error naming it; --serve wins', () => {
  const env = (v?: string) => (v === undefined ? {} : { RINGTUNE_WORKER_SERVE: v });
  assert.deepEqual(['1', 'true', 'YES', ' yes '].map((v) => servingWorker({}, env(v))), [true, true, true, true]);
  assert.deepEqual(['0', 'false', 'no', '', undefined].map((v) => servingWorker({}, env(v))), [false, false, false, false, false]);
  assert.equal(servingWorker({ serve: true }, env('0')), true);
  assert.throws(() => servingWorker({}, env('maybe')), /RINGTUNE_WORKER_SERVE=maybe: expected 1, true or yes/);
});

test('back-off: none after a good run, then 1, 2, 4 ... s per quick failure in a row, at most 30 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 20].map(backoffMs), [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('worker --serve: survives a failed trial and trains the next; SIGTERM mid-run stops its worker with a checkpoint and exits', async (t) => {
  const dir = await setup(t, ['space:', '  data.train: [bad.jsonl, train.jsonl]', 'metric: eval_loss']);
  await writeFile(join(dir, 'bad.jsonl'), 'this is not JSON\n'.repeat(40));
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, newJobSecret(), { mode: 0o600 });
  const nats = await startNatsServer();
  // Serving by the environment (as a Kubernetes manifest would set it); tests/sweep/sweep-cluster.test.ts uses --serve.
  const serving = spawn(process.execPath, [CLI, 'worker', '--nats', nats.url, '--job', 'lm', '--ring-host', '127.0.0.1', '--ring-port', '0',
    '--metrics-port', '0', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RINGTUNE_JOB_SECRET_FILE: secretFile, RINGTUNE_WORKER_SERVE: '1' } });
  let log = '';
  serving.stderr!.on('data', (b) => { log += b; });
  const exited = new Promise<number | null>((r) => serving.once('close', (c) => r(c)));
  t.after(async () => {
    serving.kill('SIGKILL');
    await nats.stop();
  });

  const sweep = sweepCli([join(dir, 'sweep.yaml'), '--cluster', nats.url, '--secret-file', secretFile, '--workers', '1']);
  assert.equal(sweep.status, 0, sweep.stderr);
  assert.match(sweep.stderr, /\[sweep\] trial-0001: failed: .*bad\.jsonl:1: malformed JSON/);
  assert.match(sweep.stderr, /\[sweep\] trial-0002: loss [\d.]+ after 6 steps/);
  const ends = (await jsonLines(join(dir, 'sw', 'sweep.jsonl'))).filter((e) => e.event === 'end');
  assert.deepEqual(ends.map((e) => [e.trial, e.status]), [['trial-0001', 'failed'], ['trial-0002', 'done']]);
  assert.match(log, /\[serve\] run 1: the worker exited 1 after [\d.]+ s; 1 quick failure in a row: next worker in 1 s/);
  assert.match(log, /\[serve\] run 2: starting a worker[\s\S]*rank 0: done at step 6/);

  // A run of 20 steps; SIGTERM to the supervisor once it trains (the coordinator logs every 2nd step).
  const coordinator = spawn(process.execPath, [CLI, 'coordinator', join(dir, 'sw', 'trial-0002', 'job.yaml'), '--nats', nats.url, '--metrics-port', '0',
    '--workers', '1', '--secret-file', secretFile, '--output', join(dir, 'long'), '--set', 'training.max_steps=20'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => coordinator.kill('SIGKILL'));
  let coordLog = '';
  await new Promise<void>((resolve, reject) => {
    coordinator.stderr!.on('data', (b) => {
      coordLog += b;
      if (/step \d+\/20 /.test(coordLog)) resolve();
    });
    coordinator.once('close', (code) => reject(new Error(`the coordinator exited ${code} before training:\n${coordLog}`)));
  });
  serving.kill('SIGTERM');
  assert.equal(await exited, 143, log);
  assert.match(log, /\[serve\] SIGTERM: the worker stops after the current step/);
  assert.match(log, /rank 0: stopped on request after step \d+; checkpoint \S+step-\d+/);
  assert.doesNotMatch(log, /\[serve\] run 4/);
  assert.match(log, /\[serve\] run 3: the worker exited \d+ after/);
});
