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
