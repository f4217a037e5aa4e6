/**
 * The heartbeat thread (src/worker/heartbeat-thread.ts) against a real nats-server: while the
 * worker's main thread is blocked for 3x a heartbeat timeout, heartbeats keep their interval and say
 * what the blocked thread is doing; a run aborted while the main thread stays blocked ends the process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ControlAuth, newJobSecret } from '../../src/control/auth.ts';
import { Bus, type ControlMessages } from '../../src/control/bus.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { subjects } from '../../src/control/subjects.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/blocked-worker.ts', import.meta.url));
const TIMEOUT_MS = 500; // the heartbeat timeout this test judges by; the fixture beats every 100 ms

function startBlocked(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, exit, output: () => out };
}

test('heartbeats keep their interval while the main thread is blocked for 3x the timeout, and say what it is doing', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  const job = 'hbjob';
  const secret = newJobSecret();
  const bus = await Bus.connect({ url: nats.url, name: 'test-coordinator' }, new ControlAuth(secret, job, 'coord-1'));
  t.after(() => bus.close());
  const beats: Array<{ at: number; h: ControlMessages['Heartbeat'] }> = [];
  bus.subscribe(subjects(job).heartbeat, 'Heartbeat', (h) => { beats.push({ at: performance.now(), h }); });
  await bus.flush();

  const w = startBlocked([nats.url, job, 'w-1', 'run-1', 'coord-1', secret, String(3 * TIMEOUT_MS + 300)]);
  t.after(() => w.child.kill('SIGKILL'));
  const { code } = await w.exit;
  assert.equal(code, 0, w.output());
  assert.match(w.output(), /unblocked/);
  const busy = beats.filter((b) => b.h.activity === 'step 5: micro-batch 2/3 forward+backward');
  // Sent while the main thread spun: the reported time in the activity grows past 3x the timeout ...
  const longest = Math.max(...busy.map((b) => b.h.activityMs ?? 0));
  assert.ok(longest >= 3 * TIMEOUT_MS, `the longest busy heartbeat reported ${longest} ms`);
  assert.ok(busy.length >= 10, `${busy.length} heartbeats during a ${3 * TIMEOUT_MS + 300} ms block at a 100 ms interval`);
  // ... and no two arrived further apart than the timeout (none was held back until the block ended).
  for (let i = 1; i < busy.length; i++) assert.ok(busy[i].at - busy[i - 1].at < TIMEOUT_MS, `a ${Math.round(busy[i].at - busy[i - 1].at)} ms gap between heartbeats`);
  for (const b of busy) assert.deepEqual([b.h.workerId, b.h.rank, b.h.phase, b.h.step, b.h.runId], ['w-1', 0, 'training', 4, 'run-1']);
  // The last heartbeat (sent on close) reports the activity the main thread set after the block.
  assert.equal(beats.at(-1)?.h.activity, 'idle');
});

test('an abort while the main thread stays blocked ends the process; an abort from anyone but the coordinator does not', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  const job = 'hbabort';
  const secret = newJobSecret();
  const coord = await Bus.connect({ url: nats.url, name: 'coord' }, new ControlAuth(secret, job, 'coord-1'));
  const stranger = await Bus.connect({ url: nats.url, name: 'stranger' }, new ControlAuth(secret, job, 'coord-2'));
  t.after(async () => { await coord.close(); await stranger.close(); });
  let beating = false;
  coord.subscribe(subjects(job).heartbeat, 'Heartbeat', () => { beating = true; });
  await coord.flush();
  const w = startBlocked([nats.url, job, 'w-1', 'run-1', 'coord-1', secret, '0']);
  t.after(() => w.child.kill('SIGKILL'));
  const deadline = Date.now() + 30_000;
  while (!beating && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(beating, w.output());
  const abort = { runId: 'run-1', abort: { reason: 'rank 1 lost', rank: 1, lastStep: 4 } };
  stranger.publish(subjects(job).control, 'Control', abort);
  coord.publish(subjects(job).control, 'Control', { ...abort, runId: 'another-run' });
  await new Promise((r) => setTimeout(r, 2500)); // past abortKillMs (1500 ms): neither counts
  assert.equal(w.child.exitCode, null, `the worker ended on a stranger's abort: ${w.output()}`);
  assert.equal(w.child.signalCode, null);
  const sent = performance.now();
  coord.publish(subjects(job).control, 'Control', abort);
  const { signal } = await w.exit;
  assert.equal(signal, 'SIGKILL');
  assert.ok(performance.now() - sent >= 1400, 'killed before abortKillMs');
  assert.match(w.output(), /aborted \(rank 1 lost\) and the compute thread is still busy \(step 5: micro-batch 2\/3 forward\+backward, \d+ ms\)/);
});

test('an abort that arrives before the assignment still ends a process whose main thread then blocks', { timeout: 30_000 }, async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  const job = 'hbearly';
  const secret = newJobSecret();
  const coord = await Bus.connect({ url: nats.url, name: 'coord' }, new ControlAuth(secret, job, 'coord-1'));
  t.after(() => coord.close());
  // Assigned 1500 ms after its heartbeat thread is connected; the Abort goes out in between.
  const w = startBlocked([nats.url, job, 'w-1', 'run-1', 'coord-1', secret, '0', '1500']);
  t.after(() => w.child.kill('SIGKILL'));
  const deadline = Date.now() + 30_000;
  while (!/connected/.test(w.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(w.output(), /connected/);
  // Another run's abort, heard first, must not count.
  coord.publish(subjects(job).control, 'Control', { runId: 'another-run', abort: { reason: 'not this run', rank: -1, lastStep: 0 } });
  coord.publish(subjects(job).control, 'Control', { runId: 'run-1', abort: { reason: 'rank 1 lost while loading', rank: 1, lastStep: 0 } });
  await coord.flush();
  const { signal } = await w.exit;
  assert.equal(signal, 'SIGKILL', w.output());
  assert.match(w.output(), /blocking/, 'the main thread blocked after the assignment');
  assert.match(w.output(), /aborted \(rank 1 lost while loading\) and the compute thread is still busy/);
});
