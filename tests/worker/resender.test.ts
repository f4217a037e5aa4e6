/** Re-sending reports until acknowledged, with a doubling interval. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Resender } from '../../src/worker/resender.ts';

test('reports are re-sent with a doubling interval until acknowledged; step acks are cumulative', () => {
  const r = new Resender(100, 400);
  const sent: string[] = [];
  const t0 = performance.now();
  for (const s of [1, 2, 3]) r.send(`step:${s}`, () => sent.push(`step:${s}`), s, t0);
  r.send('eval:3', () => sent.push('eval:3'), undefined, t0);
  assert.deepEqual(sent.splice(0), ['step:1', 'step:2', 'step:3', 'eval:3']);
  r.tick(t0 + 50);
  assert.deepEqual(sent.splice(0), [], 'not before the interval');
  r.ackThrough('step', 2); // Control.alive.step = 2: steps 1 and 2 are in
  r.tick(t0 + 101);
  assert.deepEqual(sent.splice(0), ['step:3', 'eval:3']);
  r.tick(t0 + 250);
  assert.deepEqual(sent.splice(0), [], 'the second wait is 200 ms');
  r.tick(t0 + 302);
  assert.deepEqual(sent.splice(0), ['step:3', 'eval:3']);
  r.tick(t0 + 302 + 399);
  assert.deepEqual(sent.splice(0), [], 'capped at 400 ms, not 800');
  r.tick(t0 + 302 + 401);
  assert.deepEqual(sent.splice(0), ['step:3', 'eval:3']);
  r.ack('eval:3');
  r.ackThrough('step', 3);
  r.tick(t0 + 10_000);
  assert.deepEqual(sent, []);
  assert.equal(r.size, 0);
  assert.equal(r.resent, 6);
});

test('resendAll: a restarted coordinator gets every pending report at once, and each backoff starts over', () => {
  const r = new Resender(100, 30_000);
  const sent: string[] = [];
  const t0 = performance.now();
  for (const s of [4, 5]) r.send(`step:${s}`, () => sent.push(`step:${s}`), s, t0);
  sent.length = 0;
  for (const at of [101, 302, 703, 1504]) r.tick(t0 + at); // the silence: waits 100, 200, 400, 800 ms
  assert.equal(sent.splice(0).length, 8);
  r.resendAll(t0 + 1600);
  assert.deepEqual(sent.splice(0), ['step:4', 'step:5'], 'at once, not 1600 ms after the last');
  r.tick(t0 + 1600 + 99);
  assert.deepEqual(sent.splice(0), []);
  r.tick(t0 + 1600 + 100);
  assert.deepEqual(sent.splice(0), ['step:4', 'step:5'], 'the wait is the first interval again');
  r.ackThrough('step', 5);
  assert.equal(r.size, 0);
});
