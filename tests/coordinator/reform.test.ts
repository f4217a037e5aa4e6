// Elastic re-forms (coordinator.ts E1-E3, reform.ts): the round's decision by policy, the commit rule
// (target = the most advanced survivor, source = the first at it), and the coordinator driving a round
// by hand: loss -> Reform -> reports -> ReformPlan, stale reports ignored, steps counted once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlMessages } from '../../src/control/bus.ts';
import { Coordinator } from '../../src/coordinator/coordinator.ts';
import { RECOVER_REPORTS_MS } from '../../src/coordinator/elastic.ts';
import { ReformRound, type ReformLimits } from '../../src/coordinator/reform.ts';
import { StepBook } from '../../src/coordinator/step-book.ts';
import { RunRecord } from '../../src/run/record.ts';
import { readHistory, runJob, tempDir } from '../run/helpers.ts';
import { fakeClock, joinMsg, MemoryOutbox, ready, RUN, settled, startRun, stepReport } from './helpers.ts';

type M = ControlMessages;

const report = (workerId: string, epoch: number, appliedStep: number): M['ReformReport'] => ({
  runId: RUN, workerId, epoch, appliedStep, paramHash: 'h', ringAddress: `${workerId}.local:7000`,
});
const limits = (o: Partial<ReformLimits> = {}): ReformLimits => ({ onLoss: 'shrink', minWorkers: 2, maxWorkers: 3, waitTimeoutMs: 10_000, ...o });

test('ReformRound: waits for every survivor; target = max applied step; source = first survivor at it; ranks keep the survivors\' order', () => {
  const r = new ReformRound(1, 'rank 1 lost', ['w0', 'w2', 'w3'], 4, false, ['w1'], 0);
  assert.equal(r.add(report('w1', 1, 7)), false, 'the dropped worker is not a survivor');
  assert.equal(r.add(report('w0', 2, 7)), false, 'another epoch');
  r.add(report('w0', 1, 6)); // w0 did not finish step 7's all-gather
  r.add(report('w2', 1, 7));
  assert.deepEqual(r.decide([], limits(), 1), { kind: 'wait' });
  r.add(report('w3', 1, 7));
  const d = r.decide([], limits({ maxWorkers: 4 }), 1);
  assert.equal(d.kind, 'plan');
  if (d.kind !== 'plan') return;
  assert.equal(d.targetStep, 7);
  assert.equal(d.sourceRank, 1); // w2, now rank 1
  assert.deepEqual(d.peers.map((p) => [p.rank, p.workerId]), [[0, 'w0'], [1, 'w2'], [2, 'w3']]);
});

test('ReformRound: survivors more than one step apart are refused (the ring cannot produce that)', () => {
  const r = new ReformRound(1, 'x', ['w0', 'w1'], 3, false, ['w2'], 0);
  r.add(report('w0', 1, 5));
  r.add(report('w1', 1, 7));
  const d = r.decide([], limits(), 0);
  assert.equal(d.kind, 'fail');
  assert.match((d as { reason: string }).reason, /w0 are more than one step behind step 7/);
});

test('ReformRound policies: shrink below min_workers fails naming the policy; wait waits for a replacement, then shrinks or fails', () => {
  const one = new ReformRound(1, 'rank 1 lost', ['w0'], 2, false, ['w1'], 0);
  one.add(report('w0', 1, 3));
  const shrink = one.decide([], limits({ minWorkers: 2 }), 0);
  assert.equal(shrink.kind, 'fail');
  assert.match((shrink as { reason: string }).reason, /^elastic.on_loss shrink: 1 worker left, fewer than elastic.min_workers 2 \(rank 1 lost\)$/);

  const two = new ReformRound(1, 'rank 2 lost', ['w0', 'w1'], 3, false, ['w2'], 0);
  two.add(report('w0', 1, 3));
  two.add(report('w1', 1, 3));
  const wait = limits({ onLoss: 'wait', minWorkers: 2, waitTimeoutMs: 5000 });
  assert.deepEqual(two.decide([], wait, 4999), { kind: 'wait' });
  const replaced = two.decide([{ workerId: 'n1', ringAddress: 'n1:1' }], wait, 100);
  assert.equal(replaced.kind, 'plan');
  assert.deepEqual((replaced as { peers: Array<{ workerId: string }> }).peers.map((p) => p.workerId), ['w0', 'w1', 'n1']);
  const timedOut = two.decide([], wait, 5000);
  assert.equal(timedOut.kind, 'plan', 'after wait_timeout_ms the survivors go on (>= min_workers)');
  const tooFew = two.decide([], { ...wait, minWorkers: 3 }, 5000);
  assert.match((tooFew as { reason: string }).reason, /^elastic.on_loss wait: no replacement joined within elastic.wait_timeout_ms 5000 and 2 workers left, fewer than elastic.min_workers 3/);
});

test('ReformRound: joiners beyond max_workers stay out', () => {
  const r = new ReformRound(1, 'join', ['w0', 'w1'], 2, true, [], 0);
  r.add(report('w0', 1, 4));
  r.add(report('w1', 1, 4));
  const d = r.decide([{ workerId: 'n1', ringAddress: 'a' }, { workerId: 'n2', ringAddress: 'b' }], limits({ maxWorkers: 3 }), 0);
  assert.deepEqual(d.kind === 'plan' && d.joined, ['n1']);
});

test('StepBook.completeThrough: a step a lost rank never reported is summarized from the reports that came, once', () => {
  const book = new StepBook();
  book.startAt(0);
  for (const rank of [0, 1, 2]) book.add(stepReport(rank, 1), 3);
  assert.equal(book.contiguous, 1);
  book.add(stepReport(0, 2), 3);
  book.add(stepReport(2, 2), 3); // rank 1 died before reporting step 2
  const { partial, missing } = book.completeThrough(2);
  assert.deepEqual(partial.map((s) => [s.step, s.workers, s.tokens]), [[2, 2, 128]]);
  assert.deepEqual(missing, [], 'step 2 had reports');
  assert.equal(book.contiguous, 2);
  assert.equal(book.add(stepReport(1, 2), 3), undefined, 'a late report of a step already counted');
});

async function elasticCoordinator(t: TestContext, elastic: Partial<{ onLoss: 'shrink' | 'wait' | 'fail'; minWorkers: number; maxWorkers: number; waitTimeoutMs: number }>, workers = 3) {
  const dir = await tempDir(t, 'ringtune-reform-');
  const job = runJob(dir, { cluster: { workers, heartbeat_timeout_ms: 1000 } });
  job.elastic = { ...job.elastic, ...elastic };
  const record = await RunRecord.open(job);
  const outbox = new MemoryOutbox();
  const logs: string[] = [];
  const c = new Coordinator({ job, runId: RUN, record, outbox, log: (l) => logs.push(l) });
  return { c, outbox, logs, job };
}

test('coordinator, shrink: a survivor\'s loss report drops the rank, Reform goes out, the plan follows the reports; old-epoch reports are ignored', async (t) => {
  fakeClock(t);
  const { c, outbox, job } = await elasticCoordinator(t, { onLoss: 'shrink', minWorkers: 2 });
  startRun(c, 3);
  for (const rank of [2, 1, 0]) await c.onStepReport(stepReport(rank, 1));
  for (const rank of [2, 0]) await c.onStepReport(stepReport(rank, 2)); // rank 1 dies in step 2's all-gather
  c.onFailed({ runId: RUN, rank: 2, workerId: 'w2', error: 'rank 1 was lost', step: 2, lostRank: 1, survivor: true, epoch: 0 });
  c.onFailed({ runId: RUN, rank: 0, workerId: 'w0', error: 'rank 1 was lost', step: 1, lostRank: 1, survivor: true, epoch: 0 }); // the same loss again
  assert.equal(c.currentPhase, 'reforming');
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped, r.atBoundary]), [[1, ['w1'], false]]);
  c.onReformReport(report('w0', 1, 1)); // rank 0 had not finished step 2
  assert.deepEqual(outbox.of('plan'), []);
  c.onReformReport(report('w2', 1, 2));
  const [plan] = outbox.of('plan');
  assert.deepEqual({ ...plan, peers: plan.peers.map((p) => p.workerId) }, { epoch: 1, peers: ['w0', 'w2'], targetStep: 2, sourceRank: 1 });
  assert.equal(c.currentPhase, 'training');
  assert.equal(c.status().epoch, 1);
  assert.equal(c.status().worldSize, 2);
  // A re-send from epoch 0 (rank 0's old step 3 cannot exist, but its old report of step 2 can) is ignored.
  await c.onStepReport(stepReport(0, 2, { epoch: 0 }));
  await c.onStepReport(stepReport(0, 3, { epoch: 0 }));
  for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, 3, { epoch: 1 }));
  const train = (await readHistory(job.outputDir)).filter((x) => x.type === 'train');
  assert.deepEqual(train.map((x) => [x.step, x.workers]), [[1, 3], [2, 2], [3, 2]]);
  assert.equal(await settled(c.finished), 'pending');
});

test('coordinator, shrink: a step of which no report came (lost in a NATS outage) is waited for, briefly: the survivors\' re-sent reports record it, in step order; nobody\'s: the plan goes on naming it', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox, job, logs } = await elasticCoordinator(t, { onLoss: 'shrink', minWorkers: 1 });
  startRun(c, 3);
  for (const rank of [2, 1, 0]) await c.onStepReport(stepReport(rank, 1));
  // Step 2's reports were all lost; step 3 was reported by ranks 0 and 2; rank 1 died in step 4.
  for (const rank of [2, 0]) await c.onStepReport(stepReport(rank, 3));
  c.onFailed({ runId: RUN, rank: 2, workerId: 'w2', error: 'rank 1 was lost', step: 3, lostRank: 1, survivor: true, epoch: 0 });
  c.onReformReport(report('w0', 1, 3));
  c.onReformReport(report('w2', 1, 3));
  assert.deepEqual(outbox.of('plan'), [], 'no report of step 2 came: the plan waits for the re-sends');
  for (const rank of [0, 2]) await c.onStepReport(stepReport(rank, 2, { epoch: 0 })); // re-sent at the Reform
  assert.equal(outbox.of('plan')[0]?.targetStep, 3, 'planned as soon as they came');
  const train = (await readHistory(job.outputDir)).filter((x) => x.type === 'train');
  assert.deepEqual(train.map((x) => [x.step, x.workers]), [[1, 3], [2, 2], [3, 2]], 'each step once, in step order');

  // The next loss: step 5 reported by nobody, step 6 by the survivor; nothing is re-sent.
  for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, 4, { epoch: 1 }));
  await c.onStepReport(stepReport(0, 6, { epoch: 1 }));
  c.onFailed({ runId: RUN, rank: 0, workerId: 'w0', error: 'rank 1 was lost', step: 6, lostRank: 1, survivor: true, epoch: 1 });
  c.onReformReport(report('w0', 2, 6));
  assert.equal(outbox.of('plan').length, 1, 'waiting for step 5');
  clock.advance(RECOVER_REPORTS_MS + 1);
  c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 6, runId: RUN });
  c.tick();
  assert.equal(outbox.of('plan')[1]?.targetStep, 6, 'after the bound the plan goes on');
  assert.match(logs.join('\n'), /no report of step 5 came in; the ring goes on from step 6: missing from metrics\.jsonl/);
  await c.recordWritten();
  assert.deepEqual((await readHistory(job.outputDir)).filter((x) => x.type === 'train').map((x) => x.step), [1, 2, 3, 4, 6]);
});

test('coordinator, wait: during a round that closes every ring, a survivor blaming a neighbour (whose ring was closed for the round) drops nobody', async (t) => {
  fakeClock(t);
  const { c, outbox, logs } = await elasticCoordinator(t, { onLoss: 'wait' });
  startRun(c, 3);
  c.onFailed({ runId: RUN, rank: 2, workerId: 'w2', error: 'rank 0 was lost', step: 3, lostRank: 0, survivor: true, epoch: 0 });
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped]), [[1, ['w0']]]);
  // w1 closed its ring for re-form 1 before w2 heard of it: w2 blames w1.
  c.onFailed({ runId: RUN, rank: 2, workerId: 'w2', error: 'rank 1 was lost: its ring was closed', step: 3, lostRank: 1, survivor: true, epoch: 0 });
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.dropped]), [[1, ['w0']]], 'no second round, w1 not dropped');
  assert.match(logs.join('\n'), /rank 2 reports rank 1 lost during re-form 1: its ring was closed for the re-form; not a loss/);
  assert.equal(c.status().workers.length, 2);
});

test('coordinator, fail (the default): a loss report stops the run as before', async (t) => {
  fakeClock(t);
  const { c, outbox } = await elasticCoordinator(t, {});
  startRun(c, 3);
  c.onFailed({ runId: RUN, rank: 2, workerId: 'w2', error: 'rank 1 was lost', step: 0, lostRank: 1, survivor: true, epoch: 0 });
  assert.deepEqual(outbox.of('reform'), []);
  assert.equal(outbox.of('abort').length, 1);
  const s = await settled(c.finished);
  assert.match((s as { error: Error }).error.message, /^rank 1 \(w1\) failed after step 0/);
});

test('coordinator, shrink below min_workers: a heartbeat loss fails the run naming the policy', async (t) => {
  const clock = fakeClock(t);
  const { c } = await elasticCoordinator(t, { onLoss: 'shrink', minWorkers: 2 }, 2);
  startRun(c, 2);
  clock.advance(1500);
  c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 0, runId: RUN });
  c.tick(); // w1 is late: dropped, a round for w0 alone
  c.onReformReport(report('w0', 1, 0));
  const s = await settled(c.finished);
  assert.match((s as { error: Error }).error.message, /elastic.on_loss shrink: 1 worker left, fewer than elastic.min_workers 2/);
});

test('coordinator, scale-up: a Join while training below max_workers is a standby; its Ready starts an at-boundary re-form; it joins the plan', async (t) => {
  fakeClock(t);
  const { c, outbox } = await elasticCoordinator(t, { maxWorkers: 3 }, 2);
  startRun(c, 2);
  c.onJoin(joinMsg('n1'));
  const standby = outbox.assignments.find((a) => a.to === 'n1')!.a;
  assert.equal(standby.standby, true);
  assert.equal(standby.refused, undefined);
  c.onJoin(joinMsg('n2')); // over max_workers: refused
  assert.match(outbox.assignments.find((a) => a.to === 'n2')!.a.refused!, /max_workers 3/);
  c.onReady(ready(0, { standby: true, workerId: 'n1' }));
  assert.deepEqual(outbox.of('reform').map((r) => [r.epoch, r.atBoundary]), [[1, true]]);
  for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, 1)); // the step in which they voted still counts
  c.onReformReport(report('w0', 1, 1));
  c.onReformReport(report('w1', 1, 1));
  const [plan] = outbox.of('plan');
  assert.deepEqual(plan.peers.map((p) => p.workerId), ['w0', 'w1', 'n1']);
  assert.equal(plan.sourceRank, 0);
  assert.equal(c.status().worldSize, 3);
});
