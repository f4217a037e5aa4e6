/**
 * Session 6 cuts in the ring's CPU per byte: fp32 all-gather payloads read straight into the caller's
 * buffer (GrpcMessageReader placements, SlotInbox.expectCopies) and messages that grow with the
 * collective (messageElements). Both must leave every result bit-identical; real sockets throughout,
 * rings mixing transports where the wire could differ.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import { GrpcMessageReader, writeGrpcPrefix, type MessagePlacer, type Placement, type Slot } from '../../src/collective/grpc-framing.ts';
import { compileRingOptions, messageElements } from '../../src/collective/ring-options.ts';
import type { RingTransportName } from '../../src/collective/transport.ts';
import { assertBitIdentical, checkResult, closeAll, fillRank, formRing } from './helpers.ts';

type PeerStats = { placed: number; messagesReceived: number };
const peerStats = (ring: GrpcRing): PeerStats => (ring as unknown as { peer: { stats: PeerStats } }).peer.stats;

/** One gRPC message (prefix + body) of `head` then `payload`. */
function message(head: Uint8Array, payload: Uint8Array): Uint8Array {
  const m = new Uint8Array(5 + head.length + payload.length);
  writeGrpcPrefix(m, 0, head.length + payload.length);
  m.set(head, 5);
  m.set(payload, 5 + head.length);
  return m;
}

/** A reader over 3 slots with a placer for `plan`; records what it delivers and drops. */
function harness(plan: Placement[]) {
  const free: Slot[] = Array.from({ length: 3 }, () => ({ bytes: new Uint8Array(64) }));
  const got: { body: number[]; placed: Uint8Array | null }[] = [];
  let at = 0;
  let dropped = 0;
  const placer: MessagePlacer = {
    candidate: (len) => (plan[at] && plan[at]!.head.length + plan[at]!.dst.length === len ? plan[at]! : null),
    taken: () => void at++,
    dropped: (slot) => (dropped++, free.push(slot)),
  };
  const reader = new GrpcMessageReader(60, () => free.pop() ?? null, (slot, body, placed) => {
    got.push({ body: [...body], placed });
    free.push(slot);
  }, () => {}, placer);
  return { reader, got, dropped: () => dropped, taken: () => at };
}

test('GrpcMessageReader places a payload whose header matches the plan, in any chunking; a mismatch goes to its slot', () => {
  const head = Uint8Array.of(7, 7, 7);
  const payload = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
  const other = Uint8Array.of(7, 7, 8); // same length, one byte off: not the expected message
  const stream = Uint8Array.from([...message(other, payload), ...message(head, payload), ...message(head, payload)]);
  for (const cut of [1, 2, 3, 5, 7, 24, stream.length]) {
    const dst = new Uint8Array(20);
    const h = harness([{ head, dst }]);
    for (let i = 0; i < stream.length; i += cut) h.reader.push(stream.subarray(i, i + cut), true);
    assert.equal(h.got.length, 3, `cut ${cut}`);
    // 1st: the mismatched header keeps the whole body in its slot; 2nd: placed; 3rd: the plan is used up.
    assert.deepEqual(h.got[0], { body: [...other, ...payload], placed: null });
    assert.deepEqual(h.got[1]!.body, [...head]);
    assert.equal(h.got[1]!.placed, dst);
    assert.deepEqual([...dst], [...payload]);
    assert.deepEqual(h.got[2], { body: [...head, ...payload], placed: null });
    assert.equal(h.taken(), 1);
  }
});

test('GrpcMessageReader: directTarget points into the placement after the header; abandonPlacement drops the torn message', () => {
  const head = Uint8Array.of(1, 2);
  const payload = Uint8Array.from({ length: 30 }, (_, i) => 100 + i);
  const dst = new Uint8Array(30);
  const h = harness([{ head, dst }]);
  const m = message(head, payload);
  h.reader.push(m.subarray(0, 7), true); // prefix + header: the payload is next
  const t = h.reader.directTarget()!;
  assert.equal(t.buffer, dst.buffer);
  assert.equal(t.length, 30);
  t.set(payload.subarray(0, 10));
  h.reader.directFilled(10);
  h.reader.abandonPlacement(); // the collective ended: nothing more may land in dst
  const rest = h.reader.directTarget()!;
  assert.notEqual(rest.buffer, dst.buffer, 'the rest goes to the slot');
  h.reader.push(m.subarray(17), true);
  assert.deepEqual([...dst.subarray(0, 10)], [...payload.subarray(0, 10)]);
  assert.ok(dst.subarray(10).every((b) => b === 0), 'no byte written to dst after abandonPlacement');
  assert.equal(h.got.length, 0, 'the torn message is not delivered');
  assert.equal(h.dropped(), 1);
  // The stream goes on: the next message is parsed normally.
  h.reader.push(message(Uint8Array.of(9), Uint8Array.of(4)), true);
  assert.deepEqual(h.got, [{ body: [9, 4], placed: null }]);
});

test('messageElements: 1 MiB messages up to 4 MiB chunks, ceil(chunk / 4) above, capped at largeMessageBytes', () => {
  const o = compileRingOptions({ jobId: 'j', rank: 0, worldSize: 4, token: 't' });
  const MiB = 1 << 18; // values per MiB of fp32
  assert.equal(o.largeMessageBytes, 4 << 20);
  assert.equal(messageElements(o, 1 * MiB, 2), MiB); // small: the 1 MiB floor
  assert.equal(messageElements(o, 16 * MiB, 4), MiB); // 4 MiB chunks: 4 messages of 1 MiB
  assert.equal(messageElements(o, 16 * MiB, 2), 2 * MiB); // 8 MiB chunks: 4 messages of 2 MiB
  assert.equal(messageElements(o, 64 * MiB, 4), 4 * MiB);
  assert.equal(messageElements(o, 1000 * MiB, 2), 4 * MiB); // the cap
  assert.equal(messageElements(o, 20 * MiB + 3, 2), Math.ceil((10 * MiB + 2) / 4)); // chunks of 10 MiB + 2 values
  const off = compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', largeMessageBytes: 1 << 20 });
  assert.equal(messageElements(off, 1000 * MiB, 2), MiB, 'largeMessageBytes = messageBytes: fixed size');
  // A ring that sets its message size keeps it unless it asks for growth too.
  assert.equal(compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', messageBytes: 8192 }).largeMessageBytes, 8192);
  assert.equal(compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', messageBytes: 8192, largeMessageBytes: 65_536 }).largeMessageBytes, 65_536);
  assert.throws(() => compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', messageBytes: 8192, largeMessageBytes: 4096 }), /largeMessageBytes/);
});

for (const transport of ['raw-h2', 'h2'] as const) {
  test(`${transport}: fp32 all-gather payloads land in the caller's buffer (no copy); bf16 and sums stay exact and bit-identical`, async () => {
    for (const n of [2, 4]) {
      const rings = await formRing(n, { transport, messageBytes: 16_384, largeMessageBytes: 65_536 });
      try {
        const length = 300_007; // chunks of ~75k-150k values: messages grow to 16k values, parts uneven
        for (const [step, codec] of [[1, 'fp32'], [2, 'bf16'], [3, 'fp32']] as const) {
          const before = rings.map((r) => peerStats(r).placed);
          const bufs = rings.map((_, r) => fillRank(new Float32Array(length), r));
          await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 30_000 })));
          if (codec === 'fp32') checkResult(bufs[0]!, n, 'sum', 0);
          assertBitIdentical(bufs);
          const perElems = messageElements(compileRingOptions({ jobId: 'j', rank: 0, worldSize: n, token: 't', messageBytes: 16_384, largeMessageBytes: 65_536 }), length, n);
          for (const [r, ring] of rings.entries()) {
            const placed = peerStats(ring).placed - before[r]!;
            if (codec === 'bf16') assert.equal(placed, 0, 'bf16 payloads are decoded, never placed');
            else {
              // Every all-gather message: N-1 rounds of a chunk's parts (chunks of ~length/N values).
              const want = Array.from({ length: n - 1 }, (_, k) => Math.ceil(chunkLen(length, n, (r - k + n) % n) / perElems)).reduce((a, b) => a + b, 0);
              assert.equal(placed, want, `rank ${r} of ${n}: placed ${placed} of ${want} all-gather messages`);
            }
          }
        }
      } finally {
        await closeAll(rings);
      }
    }
  });
}

/** Length of chunk c of a buffer of `length` values on n ranks (chunks.ts). */
function chunkLen(length: number, n: number, c: number): number {
  return Math.floor(length / n) + (c < length % n ? 1 : 0);
}

test('a ring of 3 mixing raw-h2, grpc-js and h2 with grown messages (4x the base) all-reduces bit-identically; grpc-js senders are placed too', async () => {
  const kinds: RingTransportName[] = ['raw-h2', 'grpc-js', 'h2'];
  const opts = { messageBytes: 32_768, largeMessageBytes: 131_072 };
  const rings = await Promise.all(
    kinds.map((transport, rank) => GrpcRing.create({ jobId: 'test-job', rank, worldSize: 3, token: 'secret', transport, ...opts })),
  );
  try {
    await Promise.all(rings.map((r) => r.connect(rings.map((x) => x.address))));
    const length = 1_000_003;
    assert.equal(messageElements(compileRingOptions({ jobId: 'j', rank: 0, worldSize: 3, token: 't', ...opts }), length, 3), 32_768, 'grown to the cap');
    for (const [step, codec] of [[1, 'fp32'], [2, 'bf16']] as const) {
      const bufs = rings.map((_, r) => fillRank(new Float32Array(length), r));
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 60_000 })));
      if (codec === 'fp32') checkResult(bufs[0]!, 3, 'sum', 0);
      assertBitIdentical(bufs);
    }
    // raw-h2 (rank 0) receives from h2 (rank 2): wire.ts headers on both, so its copies are placed.
    assert.ok(peerStats(rings[0]!).placed > 0);
    // h2 (rank 2) receives from grpc-js (rank 1), which also frames RingChunk with wire.ts.
    assert.ok(peerStats(rings[2]!).placed > 0);
  } finally {
    await closeAll(rings);
  }
});
