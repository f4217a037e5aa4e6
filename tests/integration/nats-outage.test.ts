/**
 * No wait without a deadline: a nats-server restart of ~1.5 s near the end of a run (when step
 * reports and the final evaluation are in flight) costs seconds, not the job — every step is recorded
 * once and the run ends 0; an outage longer than the timeout fails the job naming NATS, not a rank.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startNatsServer, type NatsServer } from '../../src/control/nats-server.ts';
import { history, makeJob, sleep, startLocal, until } from './cluster-helpers.ts';


test('a 1.5 s NATS restart at the end of a run: every step recorded once, final eval, exit 0', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-bounce-'));
  let nats: NatsServer = await startNatsServer();
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const total = 40;
  const job = await makeJob(dir, 'bouncejob', { workers: 2, maxSteps: total, evalEvery: 10, heartbeatTimeoutMs: 5000 });
  const run = startLocal(job, ['--nats', nats.url]);
  t.after(() => run.child.kill('SIGKILL'));
  await until('the last steps', () => new RegExp(`\\[coordinator\\] step (3[6-9]|40)/${total}`).test(run.output()), 180_000, 25);
  await nats.stop();
  await sleep(1500);
  nats = await startNatsServer({ port: nats.port });
  const code = await Promise.race([run.exit, sleep(90_000).then(() => -1)]);
  assert.equal(code, 0, run.output().slice(-4000));
  const h = await history(join(dir, 'out-bouncejob'));
  const steps = h.filter((l) => l.type === 'train').map((l) => Number(l.step)).sort((a, b) => a - b);
  assert.deepEqual(steps, Array.from({ length: total }, (_, i) => i + 1), 'every step once');
  assert.deepEqual(h.filter((l) => l.type === 'eval').map((l) => l.step), [0, 10, 20, 30, 40]);
  assert.match(run.output(), /lost the NATS connection/);
});

test('NATS down for longer than the timeout: the job fails naming NATS, not a rank', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-outage-'));
  const nats = await startNatsServer();
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const job = await makeJob(dir, 'outagejob', { workers: 2, maxSteps: 400, heartbeatTimeoutMs: 1500 });
  const run = startLocal(job, ['--nats', nats.url]);
  t.after(() => run.child.kill('SIGKILL'));
  await until('training', () => /\[coordinator\] step \d+\/400/.test(run.output()), 180_000, 25);
  await nats.stop();
  const code = await Promise.race([run.exit, sleep(60_000).then(() => -1)]);
  assert.notEqual(code, 0);
  assert.notEqual(code, -1, 'the run ended by itself');
  const out = run.output();
  assert.match(out, /NATS is down or unreachable/);
  assert.doesNotMatch(out, /rank \d \([^)]*\) failed .*no heartbeat/);
});
