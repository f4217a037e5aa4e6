/**
 * `ringtune status` asks the coordinator over NATS, authenticated with the job secret: the right
 * secret gets the state, a wrong one gets nothing (and is counted on the coordinator's /metrics),
 * no secret is a clear error, and a job without coordinator is named in the error.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { newJobSecret } from '../../src/control/auth.ts';
import { freePort, startNatsServer } from '../../src/control/nats-server.ts';
import { CLI, makeJob } from './cluster-helpers.ts';

const run = promisify(execFile);

test('status: answered with the job secret, refused and counted without it; a job without coordinator is named', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-status-'));
  const nats = await startNatsServer();
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const job = await makeJob(dir, 'statusjob', { workers: 3, maxSteps: 2 });
  const secret = newJobSecret();
  const env = { ...process.env, RINGTUNE_JOB_SECRET: secret };
  const metricsPort = await freePort();
  const coord = spawn(process.execPath, [CLI, 'coordinator', job, '--nats', nats.url, '--metrics-port', String(metricsPort)], { stdio: ['ignore', 'ignore', 'pipe'], env });
  t.after(() => coord.kill('SIGKILL'));
  let err = '';
  coord.stderr!.on('data', (d) => (err += d));
  while (!/waiting for 3 workers/.test(err)) {
    assert.equal(coord.exitCode, null, err);
    await new Promise((r) => setTimeout(r, 50));
  }
  const { stdout } = await run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'statusjob'], { env });
  const s = JSON.parse(stdout);
  assert.equal(s.job, 'statusjob');
  assert.equal(s.phase, 'waiting-for-workers');
  assert.equal(s.step, 0);
  assert.equal(s.workersAlive, 0);

  // Another secret: the coordinator drops the request (bad MAC), so nobody answers.
  await assert.rejects(run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'statusjob', '--timeout-ms', '700'], { env: { ...env, RINGTUNE_JOB_SECRET: newJobSecret() } }),
    (e: Error & { stderr: string }) => /no coordinator of job "statusjob" answered/.test(e.stderr));
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /ringtune_control_rejected_total\{reason="bad-mac",ringtune_job="statusjob"\} [1-9]/);
  assert.match(err, /\[control\] rejected a message on ringtune\.statusjob\.status \(bad-mac/);

  // No secret at all: refused before connecting, saying how to make one.
  const noSecret = { ...process.env };
  delete noSecret.RINGTUNE_JOB_SECRET;
  await assert.rejects(run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'statusjob'], { env: noSecret }),
    (e: Error & { stderr: string }) => /needs the job's shared secret: set RINGTUNE_JOB_SECRET/.test(e.stderr));
  await assert.rejects(run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'nojob', '--timeout-ms', '500'], { env }),
    (e: Error & { stderr: string }) => /no coordinator of job "nojob" answered/.test(e.stderr));
});
