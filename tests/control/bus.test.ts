/**
 * The authenticated bus over a real nats-server: a message sealed with the job secret arrives; the
 * same message sealed with another secret (a forged Assignment answering a Join), replayed, for
 * another job, or with a field out of range never reaches the handler and is counted by reason; a
 * handler that throws is contained.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from 'nats';
import { ControlAuth, newJobSecret, type RejectReason } from '../../src/control/auth.ts';
import { Bus, type ControlMessages } from '../../src/control/bus.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const assignment: ControlMessages['Assignment'] = {
  runId: 'r1', workerId: 'w0', rank: 0, worldSize: 1, peers: [{ rank: 0, workerId: 'w0', ringAddress: '127.0.0.1:1' }], compiledJobJson: '{}', resumeFrom: '',
};

test('bus: only authenticated, well-formed, fresh messages reach a handler; the rest are counted by reason', async (t) => {
  const nats = await startNatsServer();
  const secret = newJobSecret();
  const logs: string[] = [];
  const worker = await Bus.connect({ url: nats.url, name: 'w' }, new ControlAuth(secret, 'job', 'w0'), (l) => logs.push(l));
  const coordinator = await Bus.connect({ url: nats.url, name: 'c' }, new ControlAuth(secret, 'job', 'coordinator-1'));
  const forger = await Bus.connect({ url: nats.url, name: 'f' }, new ControlAuth(newJobSecret(), 'job', 'coordinator-1'));
  const otherJob = await Bus.connect({ url: nats.url, name: 'o' }, new ControlAuth(secret, 'other', 'coordinator-1'));
  t.after(async () => {
    for (const b of [worker, coordinator, forger, otherJob]) await b.close();
    await nats.stop();
  });
  const got: Array<{ a: ControlMessages['Assignment']; sender: string }> = [];
  const rejected: RejectReason[] = [];
  worker.onReject = (reason) => rejected.push(reason);
  worker.subscribe('job.worker.w0', 'Assignment', (a, meta) => { got.push({ a, sender: meta.sender }); });
  worker.subscribe('job.boom', 'Ready', () => { throw new Error('handler bug'); });
  await worker.flush();

  forger.publish('job.worker.w0', 'Assignment', { ...assignment, compiledJobJson: '{"evil":true}' });
  otherJob.publish('job.worker.w0', 'Assignment', assignment);
  coordinator.publish('job.worker.w0', 'Assignment', { ...assignment, rank: 70_000 }); // out of range
  coordinator.publish('job.worker.w0', 'Assignment', assignment);
  coordinator.publish('job.boom', 'Ready', { runId: 'r1', rank: 0, trainExamples: 1, evalExamples: 1, startStep: 0, totalSteps: 1 });
  // A raw replay of what the coordinator sent: a sniffer copies the bytes.
  const raw = await connect({ servers: nats.url });
  t.after(() => raw.close());
  const copy: Uint8Array[] = [];
  raw.subscribe('job.worker.w0', { callback: (_e, m) => copy.push(m.data) });
  await raw.flush();
  coordinator.publish('job.worker.w0', 'Assignment', { ...assignment, runId: 'r2' });
  for (let i = 0; i < 100 && copy.length === 0; i++) await sleep(10);
  raw.publish('job.worker.w0', copy[0]);
  raw.publish('job.worker.w0', new Uint8Array([1, 2, 3, 255]));
  await sleep(300);

  assert.deepEqual(got.map((g) => [g.a.runId, g.sender]), [['r1', 'coordinator-1'], ['r2', 'coordinator-1']]);
  assert.equal(got[0].a.compiledJobJson, '{}');
  assert.deepEqual([...rejected].sort(), ['bad-mac', 'handler-error', 'invalid', 'malformed', 'replay', 'wrong-job'].sort());
  assert.equal(worker.dropped, 6);
  assert.ok(logs.some((l) => /rejected a message on job\.worker\.w0 \(bad-mac/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /\(handler-error: Ready from coordinator-1: handler bug\)/.test(l)), logs.join('\n'));
});

test('bus: a subscription NATS refuses (permissions) reaches onSubscriptionError, not an unhandled rejection; permitted subjects still work', async (t) => {
  const nats = await startNatsServer({ users: [{ user: 'w', password: 'pw', publish: ['job.>'], subscribe: ['job.allowed', '_INBOX.>'] }] });
  const secret = newJobSecret();
  const logs: string[] = [];
  const bus = await Bus.connect({ url: nats.url, name: 'w', user: 'w', password: 'pw' }, new ControlAuth(secret, 'job', 'w0'), (l) => logs.push(l));
  t.after(async () => {
    await bus.close();
    await nats.stop();
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const refused: Array<[string, string]> = [];
  bus.onSubscriptionError = (subject, err) => refused.push([subject, err.message]);
  const got: string[] = [];
  bus.subscribe('job.denied', 'Ready', () => {});
  bus.subscribe('job.allowed', 'Ready', (r) => { got.push(r.runId); });
  await bus.flush();
  for (let i = 0; i < 100 && refused.length === 0; i++) await sleep(10);
  assert.deepEqual(refused.map(([s]) => s), ['job.denied']);
  assert.match(refused[0]![1], /Permissions Violation for Subscription to "job\.denied"/);
  assert.ok(logs.some((l) => /NATS ended the subscription to job\.denied: '?Permissions Violation/.test(l)), logs.join('\n'));
  bus.publish('job.allowed', 'Ready', { runId: 'r1', rank: 0, trainExamples: 1, evalExamples: 1, startStep: 0, totalSteps: 1 });
  for (let i = 0; i < 100 && got.length === 0; i++) await sleep(10);
  assert.deepEqual(got, ['r1'], 'the connection and the permitted subscription live on');
  await sleep(50);
  assert.deepEqual(unhandled, []);
});
