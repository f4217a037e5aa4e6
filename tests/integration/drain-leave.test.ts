/**
 * Signals on a worker (docs/reliability.md, "Signals: drained and joining workers"), with real
 * processes, real NATS and real sockets:
 *  - under elastic.on_loss wait, SIGTERM to rank 0 of two (a drained pod; rank 0 writes the
 *    checkpoints) makes it leave at a step boundary: it exits 143 at once, the coordinator drops it
 *    from its Leave (no heartbeat timeout), a replacement started with its rank hint joins, and the
 *    run completes with every step once and final parameters equal to the fault-free run's bit for bit;
 *  - a worker still joining exits 143 on SIGTERM at once, and non-zero on the job's authenticated
 *    Abort, naming it (a forged one, with another secret, is ignored).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlAuth, newJobSecret } from '../../src/control/auth.ts';
import { Bus } from '../../src/control/bus.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { subjects } from '../../src/control/subjects.ts';
import { clusterScratch, history, startLocal, startPodCoordinator, startPodWorker, untilOr } from './cluster-helpers.ts';
import { assertSameFinal, makeElasticJob } from './elastic-helpers.ts';

test('SIGTERM to rank 0 under on_loss wait: it leaves at a step boundary, its replacement joins, the run equals the fault-free run bit for bit', { timeout: 600_000 }, async (t) => {
  const started = performance.now();
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-drain-leave-');
  const total = 24;
  // A heartbeat timeout far longer than the test waits for the re-form: the leave must not need it.
  const job = await makeElasticJob(dir, 'drain', {
    workers: 2, maxSteps: total, globalBatch: 12, microBatch: 2, checkpointEvery: 4, heartbeatTimeoutMs: 20_000,
    elastic: { on_loss: 'wait', min_workers: 1, wait_timeout_ms: 120_000 },
  });
  const ref = startLocal(job, ['--output', join(dir, 'out-ref')]);
  all.push(ref.child);
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret(), RINGTUNE_LINGER_MS: '30000' };
  const worker = (index: number) => startPodWorker('drain', nats.url, index, env, all);
  const coordinator = startPodCoordinator(job, nats.url, env, all);
  const pods = [worker(0), worker(1)];
  const procs = () => [coordinator, ...pods];
  await untilOr('step 4', () => {
    assert.equal(coordinator.child.exitCode, null, coordinator.output());
    return /\[coordinator\] step ([4-9]|1\d)\//.test(coordinator.output());
  }, 300_000, procs());
  t.diagnostic(`step >= 4 after ${Math.round(performance.now() - started)} ms`);
  assert.match(coordinator.output(), new RegExp(`rank 0 = [^ ]+-${pods[0]!.child.pid}-`));

  // The drain: SIGTERM to rank 0's pod.
  const termAt = performance.now();
  pods[0]!.child.kill('SIGTERM');
  const code = await pods[0]!.exit;
  const leftMs = performance.now() - termAt;
  assert.equal(code, 143, pods[0]!.output());
  const leftStep = Number(/rank 0: left run \S+ after step (\d+) \(SIGTERM\)/.exec(pods[0]!.output())?.[1]);
  assert.ok(leftStep >= 4 && leftStep < total, pods[0]!.output());
  // Not after RINGTUNE_LINGER_MS (a replacement pod starts only once the old one is gone), nor after a heartbeat timeout.
  assert.ok(leftMs < 15_000, `exited ${Math.round(leftMs)} ms after SIGTERM`);
  await untilOr('the coordinator drops it', () => /rank 0 \([^)]+\) lost after step \d+: left the run \(SIGTERM\)/.test(coordinator.output()), 10_000, procs());
  t.diagnostic(`rank 0 left after step ${leftStep}, exit ${Math.round(leftMs)} ms after SIGTERM`);
  assert.match(coordinator.output(), /rank 0 \([^)]+\) leaves the run \(SIGTERM\): every rank stops after the next step/);
  assert.doesNotMatch(coordinator.output(), /no heartbeat/);
  assert.doesNotMatch(coordinator.output(), /stopped on request|asking every rank to stop/, 'the run was not stopped');
  assert.equal(coordinator.child.exitCode, null);

  // The Job's replacement pod: the same command and rank hint.
  const replacement = worker(0);
  pods.push(replacement);
  assert.equal(await coordinator.exit, 0, `${coordinator.output()}\n--- replacement:\n${replacement.output()}`);
  assert.equal(await replacement.exit, 0, replacement.output());
  assert.equal(await pods[1]!.exit, 0, pods[1]!.output());
  const out = coordinator.output();
  // The survivor (old rank 1) is rank 0 now and writes the later checkpoints; the replacement follows it.
  const m = /ring epoch (\d+): 2 workers from step (\d+) \(state from rank 0\); joined: [^:]+: (.*)/.exec(out);
  assert.ok(m, out);
  assert.equal(Number(m[2]), leftStep, 'the ring re-formed at the step the leaver stopped after: nothing abandoned');
  assert.match(m[3]!, new RegExp(`rank 0 = [^ ]+-${pods[1]!.child.pid}-.*rank 1 = [^ ]+-${replacement.child.pid}-`));
  assert.doesNotMatch(out, /resuming from step/);
  const steps = (await history(join(dir, 'out-drain'))).filter((x) => x.type === 'train').map((x) => Number(x.step));
  assert.deepEqual(steps, Array.from({ length: total }, (_, i) => i + 1), 'every step applied once');

  assert.equal(await ref.exit, 0, ref.output());
  await assertSameFinal(join(dir, 'out-drain'), join(dir, 'out-ref'));
  t.diagnostic(`done after ${Math.round(performance.now() - started)} ms`);
});

test('a joining worker exits 143 on SIGTERM at once, and on the job\'s Abort (not on a forged one)', { timeout: 120_000 }, async (t) => {
  const nats = await startNatsServer();
  const all: ChildProcess[] = [];
  t.after(async () => {
    for (const c of all) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await nats.stop();
  });
  const secret = newJobSecret();
  // No coordinator: the workers join (every second) and wait. A linger the exit must not wait for.
  const env = { ...process.env, RINGTUNE_JOB_SECRET: secret, RINGTUNE_LINGER_MS: '30000' };
  const joining = () => startPodWorker('nobody', nats.url, undefined, env, all);
  const [a, b] = [joining(), joining()];
  const joined = new Set<string>();
  const bus = await Bus.connect({ url: nats.url, name: 'test-coordinator' }, new ControlAuth(secret, 'nobody', 'coordinator-test'));
  t.after(() => bus.close());
  bus.subscribe(subjects('nobody').join, 'Join', (j) => { joined.add(j.workerId); });
  await bus.flush();
  await untilOr('both join', () => joined.size === 2, 45_000, [a, b]);

  const termAt = performance.now();
  a.child.kill('SIGTERM');
  assert.equal(await a.exit, 143, a.output());
  const ms = performance.now() - termAt;
  assert.ok(ms < 3000, `exited ${Math.round(ms)} ms after SIGTERM`);
  assert.match(a.output(), /SIGTERM while joining job nobody: exiting \(nothing to save\)/);
  t.diagnostic(`SIGTERM while joining: exit 143 after ${Math.round(ms)} ms`);

  // An Abort sealed with another secret is dropped; the job's own ends the join.
  const forged = await Bus.connect({ url: nats.url, name: 'forged' }, new ControlAuth(newJobSecret(), 'nobody', 'coordinator-forged'));
  forged.publish(subjects('nobody').control, 'Control', { runId: 'r1', abort: { reason: 'forged', rank: -1, lastStep: 0 } });
  await forged.flush();
  await forged.close();
  await untilOr('the forged abort is refused', () => /bad-mac/.test(b.output()), 10_000, [b]);
  assert.equal(b.child.exitCode, null, b.output());
  const abortAt = performance.now();
  bus.publish(subjects('nobody').control, 'Control', { runId: 'r1', abort: { reason: 'only 1 of 2 workers joined within 1000 ms', rank: -1, lastStep: 0 } });
  const code = await b.exit;
  assert.notEqual(code, 0);
  assert.ok(performance.now() - abortAt < 3000, `exited ${Math.round(performance.now() - abortAt)} ms after the Abort`);
  assert.match(b.output(), /coordinator-test aborted run r1 of job nobody while this worker was joining: only 1 of 2 workers joined/);
});
