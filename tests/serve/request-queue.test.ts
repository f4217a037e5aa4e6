/**
 * RequestQueue on its own (no model, no HTTP): one job at a time in arrival order; a full line
 * refuses at once naming the limit; a withdrawn request leaves the line at once and its job never
 * runs; idle() waits for the running job.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueFullError, RequestCancelledError, RequestQueue } from '../../src/serve/request-queue.ts';

/** A job that runs until release() is called, recording when it starts and ends. */
function gate(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const job = async () => {
    log.push(`start ${name}`);
    await done;
    log.push(`end ${name}`);
    return name;
  };
  return { job, release };
}

const live = () => new AbortController().signal;

test('one at a time in arrival order; a full line throws QueueFullError with the limit', async () => {
  const q = new RequestQueue(2);
  const log: string[] = [];
  const [a, b, c] = ['a', 'b', 'c'].map((n) => gate(log, n));
  const pa = q.run(a.job, live());
  const pb = q.run(b.job, live());
  const pc = q.run(c.job, live());
  assert.equal(q.waiting, 2);
  await assert.rejects(q.run(async () => 'd', live()), (err: unknown) => err instanceof QueueFullError && err.limit === 2 && err.retryAfterSeconds >= 1);
  a.release();
  b.release();
  c.release();
  assert.deepEqual(await Promise.all([pa, pb, pc]), ['a', 'b', 'c']);
  assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.equal(q.waiting, 0);
});

test('a request withdrawn while waiting frees its place at once and never runs', async () => {
  const q = new RequestQueue(1);
  const log: string[] = [];
  const a = gate(log, 'a');
  const pa = q.run(a.job, live());
  const client = new AbortController();
  const pb = q.run(async () => void log.push('start b'), client.signal);
  assert.equal(q.waiting, 1);
  client.abort();
  await assert.rejects(pb, RequestCancelledError);
  assert.equal(q.waiting, 0);
  const pc = q.run(async () => void log.push('start c'), live()); // b's place is free again
  await assert.rejects(q.run(async () => undefined, AbortSignal.abort()), RequestCancelledError);
  a.release();
  await Promise.all([pa, pc]);
  assert.deepEqual(log, ['start a', 'end a', 'start c']);
});

test('max 0: only the running request; a failing job does not stop the line; idle() waits for it', async () => {
  const q = new RequestQueue(0);
  const log: string[] = [];
  const a = gate(log, 'a');
  const pa = q.run(async (s) => {
    await a.job();
    assert.equal(s.aborted, false);
    throw new Error('boom');
  }, live());
  await assert.rejects(q.run(async () => undefined, live()), QueueFullError);
  let idle = false;
  const pIdle = q.idle().then(() => (idle = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(idle, false);
  a.release();
  await assert.rejects(pa, /boom/);
  await pIdle;
  assert.equal(await q.run(async () => 'next', live()), 'next');
});
