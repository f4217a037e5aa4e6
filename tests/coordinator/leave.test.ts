// A drained worker leaves the run (coordinator.ts E4, elastic.ts leave()), the coordinator driven by
// hand: Leave -> Reform{at_boundary} -> Leave{left} drops it as a loss (no heartbeat timeout) -> the
// next round waits for a replacement (wait) and plans with it; under fail, or while loading, the
// Leave stops the whole run instead; a stop asked while a round waits no longer waits for replacements.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlMessages } from '../../src/control/bus.ts';
import { Coordinator } from '../../src/coordinator/coordinator.ts';
import { RunRecord } from '../../src/run/record.ts';
import { runJob, tempDir } from '../run/helpers.ts';
import { fakeClock, joinMsg, MemoryOutbox, ready, RUN, settled, startRun, stepReport } from './helpers.ts';

type M = ControlMessages;

const report = (workerId: string, epoch: number, appliedStep: number): M['ReformReport'] => ({
  runId: RUN, workerId, epoch, appliedStep, paramHash: 'h', ringAddress: `${workerId}.local:7000`,
});
const leave = (rank: number, o: Partial<M['Leave']> = {}): M['Leave'] => ({
  runId: RUN, workerId: `w${rank}`, rank, epoch: 0, step: 0, reason: 'SIGTERM', left: false, ...o,
});

async function elasticCoordinator(t: TestContext, elastic: Partial<{ onLoss: 'shrink' | 'wait' | 'fail'; minWorkers: number; waitTimeoutMs: number }>, workers = 2) {
  const dir = await tempDir(t, 'ringtune-leave-');
  const job = runJob(dir, { cluster: { workers, heartbeat_timeout_ms: 1000 } });
  job.elastic = { ...job.elastic, minWorkers: 1, ...elastic };
  const record = await RunRecord.open(job);
  const outbox = new MemoryOutbox();
  const logs: string[] = [];
  const c = new Coordinator({ job, runId: RUN, record, outbox, log: (l) => logs.push(l) });
  return { c, outbox, logs };
}

test('E4, wait: a Leave starts an at-boundary round; Leave{left} drops the leaver at once; the replacement joins the next round at the boundary step', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox, logs } = await elasticCoordinator(t, { onLoss: 'wait', waitTimeoutMs: 60_000 });
  startRun(c, 2);
  c.onLeave(leave(0, { workerId: 'w1' }), 'w1'); // names another worker than its rank's: ignored
  c.onLeave(leave(0), 'w1'); // sent by another worker: refused
  assert.deepEqual(outbox.of('reform'), []);
  c.onLeave(leave(0), 'w0');
  c.onLeave(leave(0), 'w0'); // re-sent until the Reform answers it: one round
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped, r.atBoundary]), [[1, [], true]]);
  assert.equal(c.currentPhase, 'reforming');
  assert.match(logs.join('\n'), /rank 0 \(w0\) leaves the run \(SIGTERM\): every rank stops after the next step/);
  // Both stop after step 3 (the step whose all-reduce carried the vote counts); w1 reports, w0 leaves.
  // (Every step is reported: a round's plan waits briefly for steps nobody reported, elastic.ts R5.)
  for (let step = 1; step <= 3; step++) for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, step));
  c.onReformReport(report('w1', 1, 3));
  assert.deepEqual(outbox.of('plan'), []);
  c.onLeave(leave(0, { epoch: 0, step: 3, left: true }), 'w0');
  // Dropped as a loss, now: a loss round (epoch 2) without it; no heartbeat timeout went by.
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped, r.atBoundary]), [[1, [], true], [2, ['w0'], false]]);
  assert.match(logs.join('\n'), /rank 0 \(w0\) lost after step 3: left the run \(SIGTERM\)/);
  c.onReformReport(report('w1', 2, 3));
  clock.advance(5000);
  c.onHeartbeat({ workerId: 'w1', rank: 1, phase: 'training', step: 3, runId: RUN });
  c.tick();
  assert.deepEqual(outbox.of('plan'), [], 'wait: no plan before the replacement comes');
  // The replacement pod joins (a standby), loads, and enters the ring at the waiting round's plan.
  c.onJoin(joinMsg('r0', 0));
  assert.equal(outbox.assignments.find((a) => a.to === 'r0')?.a.standby, true);
  c.onHeartbeat({ workerId: 'r0', rank: -1, phase: 'loading', step: 0, runId: RUN });
  c.onReady(ready(0, { standby: true, workerId: 'r0' }));
  const [plan] = outbox.of('plan');
  assert.deepEqual({ ...plan, peers: plan.peers.map((p) => p.workerId) }, { epoch: 2, peers: ['w1', 'r0'], targetStep: 3, sourceRank: 0 });
  assert.equal(c.status().worldSize, 2);
  assert.equal(outbox.of('stop').length, 0, 'the run was not stopped');
  assert.equal(await settled(c.finished), 'pending');
});

test('E4: a leaver asked while a loss round forms leaves from it; a Leave{left} of a rank already dropped changes nothing', async (t) => {
  fakeClock(t);
  const { c, outbox } = await elasticCoordinator(t, { onLoss: 'shrink' }, 3);
  startRun(c, 3);
  for (let step = 1; step <= 2; step++) for (const rank of [0, 1, 2]) await c.onStepReport(stepReport(rank, step));
  c.onFailed({ runId: RUN, rank: 0, workerId: 'w0', error: 'rank 2 was lost', step: 2, lostRank: 2, survivor: true, epoch: 0 });
  c.onLeave(leave(1), 'w1'); // during the round: no new round; it leaves from this one
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped]), [[1, ['w2']]]);
  c.onReformReport(report('w0', 1, 2));
  c.onLeave(leave(1, { step: 2, left: true }), 'w1');
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped]), [[1, ['w2']], [2, ['w1', 'w2']]]);
  c.onLeave(leave(1, { step: 2, left: true }), 'w1'); // re-sent: gone already
  assert.equal(outbox.of('reform').length, 2);
  c.onReformReport(report('w0', 2, 2));
  const [plan] = outbox.of('plan');
  assert.deepEqual(plan.peers.map((p) => p.workerId), ['w0']);
});

test('E4 under fail, or while loading: a Leave stops the whole run (Control.stop), as a SIGTERM did before', async (t) => {
  fakeClock(t);
  const fail = await elasticCoordinator(t, { onLoss: 'fail' });
  startRun(fail.c, 2);
  fail.c.onLeave(leave(1), 'w1');
  assert.deepEqual([fail.outbox.of('reform').length, fail.outbox.of('stop').length], [0, 1]);
  assert.match(fail.logs.join('\n'), /rank 1 \(w1\) asks to leave \(SIGTERM\): asking every rank to stop after the current step/);

  const loading = await elasticCoordinator(t, { onLoss: 'wait' });
  for (const w of ['w0', 'w1']) loading.c.onJoin(joinMsg(w));
  assert.equal(loading.c.currentPhase, 'loading');
  loading.c.onLeave(leave(1), 'w1');
  assert.deepEqual([loading.outbox.of('reform').length, loading.outbox.of('stop').length], [0, 1]);
});

test('a stop asked while a wait round waits for a replacement plans with the survivors at once (they stop after one step)', async (t) => {
  fakeClock(t);
  const { c, outbox } = await elasticCoordinator(t, { onLoss: 'wait', waitTimeoutMs: 600_000 }, 3);
  startRun(c, 3);
  for (let step = 1; step <= 4; step++) for (const rank of [0, 1, 2]) await c.onStepReport(stepReport(rank, step));
  c.onFailed({ runId: RUN, rank: 0, workerId: 'w0', error: 'rank 2 was lost', step: 4, lostRank: 2, survivor: true, epoch: 0 });
  c.onReformReport(report('w0', 1, 4));
  c.onReformReport(report('w1', 1, 4));
  c.tick();
  assert.deepEqual(outbox.of('plan'), [], 'waiting for a replacement');
  c.requestStop('SIGTERM');
  c.tick();
  assert.equal(outbox.of('stop').length, 1);
  const [plan] = outbox.of('plan');
  assert.deepEqual(plan.peers.map((p) => p.workerId), ['w0', 'w1']);
  // A Leave after the stop is answered with the stop: the leaver stops with the run.
  c.onLeave(leave(1, { epoch: 1 }), 'w1');
  assert.equal(outbox.of('stop').length, 2);
  assert.equal(outbox.of('reform').length, 1);
});
