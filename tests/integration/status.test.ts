/** `ringtune status` asks the coordinator over NATS; without a coordinator it says so by job name. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { CLI, makeJob } from './cluster-helpers.ts';

const run = promisify(execFile);

test('status reports a waiting coordinator; a job without coordinator is named in the error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-status-'));
  const nats = await startNatsServer();
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const job = await makeJob(dir, 'statusjob', { workers: 3, maxSteps: 2 });
  const coord = spawn(process.execPath, [CLI, 'coordinator', job, '--nats', nats.url, '--metrics-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => coord.kill('SIGKILL'));
  let err = '';
  coord.stderr!.on('data', (d) => (err += d));
  while (!/waiting for 3 workers/.test(err)) {
    assert.equal(coord.exitCode, null, err);
    await new Promise((r) => setTimeout(r, 50));
  }
  const { stdout } = await run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'statusjob']);
  const s = JSON.parse(stdout);
  assert.equal(s.job, 'statusjob');
  assert.equal(s.phase, 'waiting-for-workers');
  assert.equal(s.step, 0);
  assert.equal(s.workersAlive, 0);
  await assert.rejects(run(process.execPath, [CLI, 'status', '--nats', nats.url, '--job', 'nojob', '--timeout-ms', '500']),
    (e: Error & { stderr: string }) => /no coordinator of job "nojob" answered/.test(e.stderr));
});
