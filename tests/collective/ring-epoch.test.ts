// Re-forming a ring (docs/reliability.md): the broadcast that hands state to a lagging or new rank is
// bit-exact (-0.0, NaN payloads, infinities, subnormals), and a rank of another ring epoch is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp32 } from '../../src/collective/codecs.ts';
import { RingConnectError } from '../../src/collective/errors.ts';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { ringBroadcast } from '../../src/collective/ring-allreduce.ts';
import { closeAll, formRing, TRANSPORTS } from './helpers.ts';

/** Float32 bit patterns an arithmetic hand-over would change: x + 0 makes -0.0 +0.0, and NaN payloads are not preserved by every op. */
const SPECIAL_BITS = [0x80000000, 0x7fc00001, 0xffc12345, 0x7f800001, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff, 0x3f800000];

/** `length` values for rank `rank`: the special patterns first, then rank-specific ordinary values. */
function payload(length: number, rank: number): Float32Array {
  const bits = new Uint32Array(length);
  for (let i = 0; i < length; i++) bits[i] = i < SPECIAL_BITS.length ? SPECIAL_BITS[i]! ^ (rank === 0 ? 0 : 0x1) : (0x3f000000 + rank * 7919 + i) >>> 0;
  return new Float32Array(bits.buffer);
}

const bytes = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

test('ringBroadcast over memory peers: every rank ends with root\'s bytes, world sizes 1..6, every root, awkward lengths', async () => {
  for (const n of [1, 2, 3, 4, 5, 6]) {
    for (const length of [0, 1, 7, 1000]) {
      for (let root = 0; root < n; root++) {
        const peers = createMemoryRing(n, 1); // one-message queues: the chain must not deadlock
        const bufs = peers.map((_, r) => payload(length, r === root ? 0 : r + 1));
        const want = Buffer.from(bytes(bufs[root]!));
        await Promise.all(peers.map((peer, rank) => ringBroadcast(peer, bufs[rank]!, { rank, worldSize: n, step: 1, root, codec: fp32, maxElementsPerMessage: 3 })));
        for (const [r, b] of bufs.entries()) assert.ok(bytes(b).equals(want), `n ${n} length ${length} root ${root}: rank ${r} differs`);
      }
    }
  }
});

test('ringBroadcast: the special patterns survive as bits (an all-reduce with zeros would not)', async () => {
  const peers = createMemoryRing(3);
  const bufs = [payload(9, 0), new Float32Array(9), new Float32Array(9)];
  await Promise.all(peers.map((peer, rank) => ringBroadcast(peer, bufs[rank]!, { rank, worldSize: 3, step: 1, root: 0, codec: fp32, maxElementsPerMessage: 2 })));
  for (const b of bufs.slice(1)) assert.deepEqual([...new Uint32Array(b.buffer)], SPECIAL_BITS);
  // The premise: summing zeros in (the all-reduce route) does change -0.0.
  assert.equal(Object.is(-0 + 0, -0), false);
});

test('ringBroadcast rejects a root outside the ring', async () => {
  const peers = createMemoryRing(2);
  await assert.rejects(ringBroadcast(peers[0]!, new Float32Array(1), { rank: 0, worldSize: 2, step: 1, root: 2, codec: fp32, maxElementsPerMessage: 4 }), /root 2/);
});

for (const transport of TRANSPORTS) {
  test(`[${transport}] GrpcRing.broadcast over sockets: bit-identical from every root, then all-reduce goes on on the same ring`, async () => {
    const n = 3;
    const rings = await formRing(n, { transport, messageBytes: 12, epoch: 4 } as Parameters<typeof formRing>[1]);
    try {
      let step = 0;
      for (let root = 0; root < n; root++) {
        const bufs = rings.map((_, r) => payload(1001, r === root ? 0 : r + 1));
        const want = Buffer.from(bytes(bufs[root]!));
        step++;
        await Promise.all(rings.map((ring, r) => ring.broadcast(bufs[r]!, { step, root, timeoutMs: 20_000 })));
        for (const b of bufs) assert.ok(bytes(b).equals(want), `root ${root}`);
      }
      const sums = rings.map((_, r) => Float32Array.of(r, 2 * r));
      step++;
      await Promise.all(rings.map((ring, r) => ring.allReduce(sums[r]!, { step, timeoutMs: 20_000 })));
      for (const s of sums) assert.deepEqual([...s], [3, 6]);
      assert.equal(rings[0]!.epoch, 4);
      assert.equal(rings[0]!.rejected.staleEpoch, 0);
    } finally {
      await closeAll(rings);
    }
  });

  test(`[${transport}] a rank of another ring epoch is refused at Pull and counted (Ping runs the same check)`, async () => {
    const epoch1 = await GrpcRing.create({ jobId: 'test-job', rank: 0, worldSize: 2, token: 'secret', transport, epoch: 1 });
    // Rank 1 left over from epoch 0 dials its left neighbour (rank 0 of the new epoch).
    const stale = await GrpcRing.create({ jobId: 'test-job', rank: 1, worldSize: 2, token: 'secret', transport, epoch: 0, connectTimeoutMs: 1500 });
    try {
      const addresses = [epoch1.address, stale.address];
      const joined = stale.connect(addresses);
      await assert.rejects(joined, (err: Error) => err instanceof RingConnectError && /epoch 1, the caller's is 0/.test(err.message));
      assert.ok(epoch1.rejected.staleEpoch >= 1, `staleEpoch ${epoch1.rejected.staleEpoch}`);
      assert.equal(epoch1.rejected.wrongSender, 0);
    } finally {
      await Promise.all([epoch1.close(), stale.close()]);
    }
  });
}
