// Coordinator restart (coordinator.ts R1-R5; recovery.ts, session-file.ts, elastic.ts): the session file,
// the heartbeat probe, the record continued as the killed coordinator left it, and a restarted
// coordinator driven by hand: Recover -> reports -> plan, the steps it never recorded taken from the
// re-sent reports once, a step nobody re-sent after the bound recorded from what came.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlMessages } from '../../src/control/bus.ts';
import { decode, encode } from '../../src/control/messages.ts';
import { Coordinator } from '../../src/coordinator/coordinator.ts';
import { RECOVER_REPORTS_MS } from '../../src/coordinator/elastic.ts';
import { Membership } from '../../src/coordinator/membership.ts';
import { continueRecord, findLiveWorkers } from '../../src/coordinator/recovery.ts';
import { SessionFile, type CoordinatorSession } from '../../src/coordinator/session-file.ts';
import { InputError } from '../../src/errors.ts';
import { RunRecord } from '../../src/run/record.ts';
import { readHistory, runJob, tempDir } from '../run/helpers.ts';
import { fakeClock, MemoryOutbox, RUN, stepReport } from './helpers.ts';

type M = ControlMessages;

const session = (o: Partial<CoordinatorSession> = {}): CoordinatorSession => ({
  job: 'j', runId: RUN, epoch: 0, workers: ['w0', 'w1'], totalSteps: 10, data: { train: 40, eval: 8 }, labels: [], ...o,
});
const beat = (workerId: string, rank: number, o: Partial<M['Heartbeat']> = {}): M['Heartbeat'] => ({
  workerId, rank, phase: 'training', step: 4, runId: RUN, epoch: 0, reformEpoch: 0, ...o,
});

test('SessionFile: saved temp-then-rename, read back; another job\'s reads as none; a broken one names the file; removed at the end', async (t) => {
  const dir = await tempDir(t, 'ringtune-session-');
  const f = new SessionFile(dir);
  assert.equal(await f.read('j'), undefined, 'no file: no recovery');
  await f.save(session({ epoch: 2 }));
  assert.deepEqual(await f.read('j'), session({ epoch: 2 }));
  assert.equal(await f.read('other'), undefined);
  await f.remove();
  assert.equal(await f.read('j'), undefined);
  await writeFile(f.file, '{"job": "j", "runId"');
  await assert.rejects(f.read('j'), (e: Error) => e instanceof InputError && e.message.startsWith(`${f.file}: not JSON`) && /remove it/.test(e.message));
});

test('findLiveWorkers: only heartbeats of the run, in training, from the worker they name; done as soon as every member was heard', async () => {
  const s = session();
  let handler: ((h: M['Heartbeat'], sender: string) => void) | undefined;
  const t0 = performance.now();
  const found = findLiveWorkers(s, 10_000, (h) => (handler = h));
  handler!(beat('w1', 1, { runId: 'run-0' }), 'w1'); // the run of an earlier session
  handler!(beat('w1', 1), 'w0'); // sent by another worker
  handler!(beat('w0', 0, { phase: 'loading' }), 'w0');
  handler!(beat('w1', 1, { step: 5, epoch: 2, reformEpoch: 3 }), 'w1');
  handler!(beat('w0', 0), 'w0');
  const live = await found;
  assert.ok(performance.now() - t0 < 5000, 'returned before the window ended');
  assert.equal(handler, undefined, 'the probe let go of the subscription');
  assert.deepEqual(live, [
    { workerId: 'w0', rank: 0, step: 4, epoch: 0, reformEpoch: 0 },
    { workerId: 'w1', rank: 1, step: 5, epoch: 2, reformEpoch: 3 },
  ]);
  assert.deepEqual(await findLiveWorkers(s, 50, () => {}), [], 'nobody heard within the window');
});

test('Membership.recover: members at the ranks their heartbeats name; a rank nobody holds is a dropped slot', () => {
  const m = new Membership(3);
  m.recover([{ workerId: 'w0', rank: 0, step: 4 }, { workerId: 'w2', rank: 2, step: 4 }]);
  assert.deepEqual([m.byRank(0), m.byRank(1), m.byRank(2)], [{ workerId: 'w0' }, undefined, { workerId: 'w2' }]);
  assert.equal(m.activeCount, 2);
  assert.deepEqual(m.activeWorkers(), ['w0', 'w2']);
});

test('a restarted coordinator: Recover above every epoch the workers know; the plan waits for the re-sent reports, records each missing step once, and re-runs the abandoned evaluation', async (t) => {
  const clock = fakeClock(t);
  const dir = await tempDir(t, 'ringtune-recover-');
  const job = runJob(dir, { cluster: { workers: 2, heartbeat_timeout_ms: 1000 }, eval: { every_n_steps: 5 } });
  // The killed coordinator recorded steps 1-3 (the last line cut short by the kill).
  const killed = await RunRecord.open(job);
  for (const s of [1, 2, 3]) await killed.train({ step: s, loss: 3 - s / 10, grad_norm: 1, count: 32, lr: 1e-3 });
  await appendFile(join(job.outputDir, 'metrics.jsonl'), '{"type":"train","st');
  const s = session({ epoch: 1, totalSteps: 10 });
  const { record, recordedThrough, recordedAbove, lastCheckpointStep } = await continueRecord(job, s);
  assert.deepEqual([recordedThrough, recordedAbove, lastCheckpointStep], [3, [], 0]);
  const outbox = new MemoryOutbox();
  const saved: CoordinatorSession[] = [];
  const c = new Coordinator({ job, runId: RUN, record, outbox, log: () => {}, session: (x) => saved.push(x) });
  // w1 was asked for re-form 2 by the killed coordinator; both train in ring epoch 1.
  c.recover({ session: s, recordedThrough, recordedAbove, lastCheckpointStep, live: [
    { workerId: 'w0', rank: 0, step: 5, epoch: 1, reformEpoch: 0 }, { workerId: 'w1', rank: 1, step: 5, epoch: 1, reformEpoch: 2 },
  ] });
  assert.equal(c.currentPhase, 'reforming');
  assert.deepEqual(outbox.of('recover').map((r) => r.epoch), [3]);
  assert.deepEqual(outbox.of('reform'), [], 'a restart is announced with Recover, which a new sender may send');
  const report = (workerId: string, appliedStep: number): M['ReformReport'] => ({ runId: RUN, workerId, epoch: 3, appliedStep, paramHash: 'h', ringAddress: `${workerId}:7000` });
  c.onReformReport(report('w0', 5));
  c.onReformReport(report('w1', 5));
  assert.deepEqual(outbox.of('plan'), [], 'steps 4 and 5 are not recorded yet');
  // The re-sent reports (ring epoch 1): step 3 again (recorded already), 4 and 5 from both ranks, except rank 1's step 5.
  for (const rank of [0, 1]) await c.onStepReport(stepReport(rank, 3, { epoch: 1 }));
  for (const rank of [0, 1]) await c.onStepReport(stepReport(rank, 4, { epoch: 1 }));
  await c.onStepReport(stepReport(0, 5, { epoch: 1 }));
  c.tick();
  assert.deepEqual(outbox.of('plan'), [], 'within the bound the plan waits for step 5');
  clock.advance(RECOVER_REPORTS_MS + 1);
  c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 5, runId: RUN });
  c.onHeartbeat({ workerId: 'w1', rank: 1, phase: 'training', step: 5, runId: RUN });
  c.tick();
  const [plan] = outbox.of('plan');
  assert.deepEqual({ ...plan, peers: plan.peers.map((p) => p.workerId) }, { epoch: 3, peers: ['w0', 'w1'], targetStep: 5, sourceRank: 0, evaluate: true });
  assert.equal(c.currentPhase, 'training');
  assert.equal(c.status().epoch, 3);
  await c.recordWritten();
  const train = (await readHistory(job.outputDir)).filter((x) => x.type === 'train');
  assert.deepEqual(train.map((x) => [x.step, x.workers]), [[1, undefined], [2, undefined], [3, undefined], [4, 2], [5, 1]], 'each step once; step 5 from the report that came');
  assert.deepEqual(saved.map((x) => [x.epoch, x.workers]), [[3, ['w0', 'w1']]]);
  // Reports of the new epoch go on as usual.
  for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, 6, { epoch: 3 }));
  assert.deepEqual((await readHistory(job.outputDir)).filter((x) => x.type === 'train').map((x) => x.step), [1, 2, 3, 4, 5, 6]);
});

test('a restarted coordinator, metrics.jsonl with a hole (steps 4-5 lost in a NATS outage, 6-7 recorded): "recorded through 3"; the re-sent 4-5 are recorded, in step order, 6-7 not twice; acknowledged only then', async (t) => {
  const clock = fakeClock(t);
  const dir = await tempDir(t, 'ringtune-recover-hole-');
  const job = runJob(dir, { cluster: { workers: 2, heartbeat_timeout_ms: 1000 }, eval: { every_n_steps: 5 } });
  const killed = await RunRecord.open(job);
  for (const s of [1, 2, 3]) await killed.train({ step: s, loss: 3 - s / 10, grad_norm: 1, count: 32, lr: 1e-3 });
  await killed.eval(5, { loss: 2.5 });
  for (const s of [6, 7]) await killed.train({ step: s, loss: 3 - s / 10, grad_norm: 1, count: 32, lr: 1e-3 });
  const s = session({ epoch: 0, totalSteps: 10 });
  const at = await continueRecord(job, s);
  assert.deepEqual([at.recordedThrough, at.recordedAbove], [3, [6, 7]], 'every step through 3 is in; 6 and 7 are above a hole');
  const outbox = new MemoryOutbox();
  const logs: string[] = [];
  const c = new Coordinator({ job, runId: RUN, record: at.record, outbox, log: (l) => logs.push(l) });
  c.recover({ session: s, recordedThrough: at.recordedThrough, recordedAbove: at.recordedAbove, lastCheckpointStep: 0, live: [
    { workerId: 'w0', rank: 0, step: 8, epoch: 0, reformEpoch: 0 }, { workerId: 'w1', rank: 1, step: 8, epoch: 0, reformEpoch: 0 },
  ] });
  assert.match(logs.join('\n'), /metrics\.jsonl holds steps through 3 and 6-7 \(the others are taken from the re-sent reports\)/);
  const report = (workerId: string): M['ReformReport'] => ({ runId: RUN, workerId, epoch: 1, appliedStep: 8, paramHash: 'h', ringAddress: `${workerId}:7000` });
  c.onReformReport(report('w0'));
  c.onReformReport(report('w1'));
  clock.advance(100);
  c.onHeartbeat(beat('w0', 0, { step: 8 }));
  c.onHeartbeat(beat('w1', 1, { step: 8 }));
  c.tick();
  assert.deepEqual(outbox.of('plan'), [], 'steps 4, 5 and 8 are not recorded yet: the plan waits');
  assert.deepEqual(outbox.of('alive').at(-1)?.step, 3, 'nothing above the hole is acknowledged');
  // The workers re-send everything the killed coordinator never acknowledged (it acknowledged through 3).
  for (const step of [4, 5, 6, 7, 8]) for (const rank of [1, 0]) await c.onStepReport(stepReport(rank, step, { epoch: 0 }));
  c.tick();
  const [plan] = outbox.of('plan');
  assert.equal(plan?.targetStep, 8, 'every step through the target recorded: planned at once');
  assert.equal(plan?.evaluate, undefined, 'the evaluation at 5 was recorded by the killed coordinator');
  assert.deepEqual(outbox.of('alive').at(-1)?.step, 8);
  await c.recordWritten();
  const lines = (await readHistory(job.outputDir)).map((l) => `${l.type} ${l.step}`);
  assert.deepEqual(lines, ['train 1', 'train 2', 'train 3', 'train 4', 'train 5', 'eval 5', 'train 6', 'train 7', 'train 8'], 'each step once, in step order');
  assert.deepEqual(at.record.history.lines.map((l) => `${l.type} ${l.step}`), lines, 'the record in memory too (report.html is made from it)');
});

test('a rank lost during a restarted coordinator\'s first round is dropped by the next Recover (the only message a worker takes from a new sender), and the field survives the wire', async (t) => {
  const clock = fakeClock(t);
  const dir = await tempDir(t, 'ringtune-recover-drop-');
  const job = runJob(dir, { cluster: { workers: 2, heartbeat_timeout_ms: 1000 } });
  job.elastic = { ...job.elastic, onLoss: 'shrink', minWorkers: 1 };
  const s = session({ totalSteps: 10 });
  const at = await continueRecord(job, s);
  const outbox = new MemoryOutbox();
  const c = new Coordinator({ job, runId: RUN, record: at.record, outbox, log: () => {} });
  c.recover({ session: s, recordedThrough: 0, recordedAbove: [], lastCheckpointStep: 0, live: [
    { workerId: 'w0', rank: 0, step: 0, epoch: 0, reformEpoch: 0 }, { workerId: 'w1', rank: 1, step: 0, epoch: 0, reformEpoch: 0 },
  ] });
  assert.deepEqual(outbox.of('recover').map((r) => [r.epoch, r.dropped]), [[1, []]]);
  clock.advance(1500);
  c.onHeartbeat(beat('w0', 0, { step: 0 }));
  c.tick(); // w1 silent past the timeout: lost during the round
  const last = outbox.of('recover').at(-1)!;
  assert.deepEqual([last.epoch, last.dropped], [2, ['w1']]);
  assert.deepEqual(outbox.of('reform'), [], 'still announced with Recover');
  const wire = decode('Control', encode('Control', { runId: RUN, recover: last }));
  assert.deepEqual(wire.recover?.dropped, ['w1']);
});
