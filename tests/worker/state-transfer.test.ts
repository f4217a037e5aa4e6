// The state an elastic re-form hands over (worker/state-transfer.ts): packed on the source, broadcast
// over a ring, unpacked on every rank -> parameters, every optimizer buffer and both step counts equal
// bit for bit, and the next update is the same everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp32 } from '../../src/collective/codecs.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { ringBroadcast } from '../../src/collective/ring-allreduce.ts';
import { createOptimizer } from '../../src/optim/create-optimizer.ts';
import type { FlatParams } from '../../src/train/flat-params.ts';
import { packState, stateLength, unpackState } from '../../src/worker/state-transfer.ts';

const SIZE = 37;
const settings = { optimizer: 'adamw' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, momentum: 0, nesterov: false, dampening: 0 };

/** What state-transfer.ts reads of FlatParams: the flat buffer and writeParams (counted). */
function flatStub(seed: number): FlatParams & { written: number } {
  const params = Float32Array.from({ length: SIZE }, (_, i) => Math.sin(seed * 100 + i));
  params[0] = -0;
  new Uint32Array(params.buffer)[1] = 0x7fc0beef; // a NaN with a payload
  const stub = { size: SIZE, params, written: 0, writeParams() { stub.written++; } };
  return stub as unknown as FlatParams & { written: number };
}

test('packState / broadcast / unpackState: every rank ends with the source\'s parameters, optimizer buffers and steps, bit for bit', async () => {
  const n = 3;
  const source = 1;
  const ranks = Array.from({ length: n }, (_, r) => {
    const flat = flatStub(r);
    const opt = createOptimizer(settings, SIZE, new Uint8Array(SIZE).fill(1));
    const grads = Float32Array.from({ length: SIZE }, (_, i) => Math.cos(r + i));
    for (let k = 0; k <= r; k++) opt.update(flat.params, grads, 1e-3); // rank r has taken r + 1 updates
    return { flat, opt };
  });
  const trainStep = 2 ** 24 + 3; // not representable as a float32 value: travels as bits
  const bufs = ranks.map(({ flat, opt }) => packState(flat, opt, trainStep));
  assert.equal(bufs[0]!.length, stateLength(ranks[0]!.flat, ranks[0]!.opt));
  assert.equal(bufs[0]!.length, SIZE * 3 + 2); // params, m, v, two counts
  const want = { params: Buffer.from(ranks[source]!.flat.params.slice().buffer), m: Buffer.from(ranks[source]!.opt.buffers.m!.slice().buffer), v: Buffer.from(ranks[source]!.opt.buffers.v!.slice().buffer) };
  const peers = createMemoryRing(n);
  await Promise.all(peers.map((peer, rank) => ringBroadcast(peer, bufs[rank]!, { rank, worldSize: n, step: 1, root: source, codec: fp32, maxElementsPerMessage: 10 })));
  for (const [r, { flat, opt }] of ranks.entries()) {
    assert.equal(unpackState(bufs[r]!, flat, opt), trainStep, `rank ${r}`);
    assert.ok(Buffer.from(flat.params.buffer).equals(want.params), `rank ${r} params`);
    assert.ok(Buffer.from(opt.buffers.m!.buffer).equals(want.m), `rank ${r} m`);
    assert.ok(Buffer.from(opt.buffers.v!.buffer).equals(want.v), `rank ${r} v`);
    assert.equal(opt.step, source + 1, `rank ${r} optimizer step`);
    assert.equal(flat.written, 1, 'parameters written back into the model');
  }
  // The next update is identical on every rank (Adam's bias correction uses the restored step).
  const g = Float32Array.from({ length: SIZE }, (_, i) => 0.1 * i);
  for (const { flat, opt } of ranks) opt.update(flat.params, g, 1e-3);
  for (const { flat } of ranks.slice(1)) assert.ok(Buffer.from(flat.params.buffer).equals(Buffer.from(ranks[0]!.flat.params.buffer)));
});

test('unpackState refuses a buffer of another length', () => {
  const flat = flatStub(0);
  const opt = createOptimizer(settings, SIZE, new Uint8Array(SIZE));
  assert.throws(() => unpackState(new Float32Array(5), flat, opt), /state of 5 values for 113/);
});
