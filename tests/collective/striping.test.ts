// Striping a ring link over K connections (src/collective/stripes.ts): K = 2 and 3 give the bytes of
// K = 1 for fp32 and bf16 (values chosen so float32 addition rounds: the order of additions shows),
// both over memory peers (every N, K and awkward length) and over real sockets with real stripe
// threads; a K mismatch between neighbours fails naming cluster.ring_connections; re-forming works;
// a lost stripe connection breaks the ring like a lost link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { chunkRange } from '../../src/collective/chunks.ts';
import { bf16, fp32, type WireCodec } from '../../src/collective/codecs.ts';
import { PeerLostError, RingConnectError } from '../../src/collective/errors.ts';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { ringAllReduce, type ReduceOp } from '../../src/collective/ring-allreduce.ts';
import { rangesLength, stripeAddress, stripeChunkRanges, stripeRange } from '../../src/collective/stripes.ts';
import { closeAll, formRing } from './helpers.ts';

/** Seeded values of mixed magnitude (mulberry32): float32 sums of them round, so a changed order changes bits. */
function randomValues(length: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length }, () => (next() - 0.5) * 10 ** Math.floor(next() * 6 - 2));
}

const bytes = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

/** All ranks' buffers after an all-reduce over memory peers, K stripes run one after the other. */
async function memoryStriped(n: number, k: number, length: number, codec: WireCodec, op: ReduceOp, seed = 1000): Promise<Float32Array[]> {
  const bufs = Array.from({ length: n }, (_, r) => randomValues(length, seed + r));
  for (let s = 0; s < k; s++) {
    const peers = createMemoryRing(n, 1);
    const chunkRanges = k > 1 ? stripeChunkRanges(length, n, k, s) : undefined;
    await Promise.all(peers.map((peer, rank) => ringAllReduce(peer, bufs[rank]!, { rank, worldSize: n, step: 1, op, codec, maxElementsPerMessage: 3, chunkRanges })));
  }
  return bufs;
}

test('stripeChunkRanges: every element in exactly one stripe, in the chunk it has with one connection', () => {
  for (const n of [1, 2, 3, 5]) {
    for (const k of [1, 2, 3, 4]) {
      for (const length of [0, 1, 5, 7, 12, 1001]) {
        const owner = new Int32Array(length).fill(-1);
        let total = 0;
        for (let s = 0; s < k; s++) {
          const ranges = stripeChunkRanges(length, n, k, s);
          total += rangesLength(ranges);
          ranges.forEach(({ start, end }, c) => {
            const chunk = chunkRange(length, n, c);
            assert.ok(start >= chunk.start && end <= chunk.end, `n ${n} k ${k} length ${length}: stripe ${s} chunk ${c} outside the chunk`);
            for (let i = start; i < end; i++) {
              assert.equal(owner[i], -1, `element ${i} in two stripes`);
              owner[i] = s;
            }
          });
        }
        assert.equal(total, length);
        const covered = [...Array(k)].reduce((m: number, _, s) => m + (stripeRange(length, k, s).end - stripeRange(length, k, s).start), 0);
        assert.equal(covered, length);
      }
    }
  }
  assert.equal(stripeAddress('10.0.0.7:7070', 2), '10.0.0.7:7072');
  assert.equal(stripeAddress('[::1]:7070', 1), '[::1]:7071');
});

test('striped ring over memory peers: K = 2, 3, 4 give the bytes of K = 1, fp32 and bf16, sum and mean, N = 2..5, awkward lengths', async () => {
  for (const n of [2, 3, 5]) {
    for (const length of [1, 4, 11, 1001]) {
      for (const [codec, op] of [[fp32, 'sum'], [bf16, 'sum'], [fp32, 'mean'], [bf16, 'mean']] as const) {
        const want = (await memoryStriped(n, 1, length, codec, op)).map(bytes);
        for (const k of [2, 3, 4]) {
          const got = await memoryStriped(n, k, length, codec, op);
          got.forEach((b, r) => assert.ok(bytes(b).equals(want[r]!), `n ${n} length ${length} ${codec.name} ${op} k ${k}: rank ${r} differs from K = 1`));
        }
      }
    }
  }
});

test('the test values make float32 addition order visible (else bit-identity would prove nothing)', () => {
  const [a, b, c] = [randomValues(1000, 1), randomValues(1000, 2), randomValues(1000, 3)];
  let differ = 0;
  for (let i = 0; i < 1000; i++) if (Math.fround(Math.fround(a[i]! + b[i]!) + c[i]!) !== Math.fround(a[i]! + Math.fround(b[i]! + c[i]!))) differ++;
  assert.ok(differ > 50, `only ${differ} of 1000 sums depend on the order`);
});

/** Runs the same collectives on a ring of n ranks with `connections` stripes; returns every result's bytes. */
async function runCase(n: number, connections: number, cases: ReadonlyArray<{ length: number; codec: 'fp32' | 'bf16'; op: ReduceOp; shared?: boolean }>): Promise<Buffer[][]> {
  const rings = await formRing(n, { connections, connectTimeoutMs: 20_000 });
  try {
    const out: Buffer[][] = [];
    for (const [i, c] of cases.entries()) {
      const bufs = rings.map((_, r) => {
        const v = randomValues(c.length, 7 * i + r);
        if (!c.shared) return v;
        const shared = new Float32Array(new SharedArrayBuffer(4 * c.length));
        shared.set(v);
        return shared;
      });
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: i + 1, codec: c.codec, op: c.op, timeoutMs: 30_000 })));
      out.push(bufs.map((b) => Buffer.from(bytes(b))));
    }
    if (connections > 1) {
      const s = rings[0]!.striping;
      assert.equal(s.connections, connections);
      assert.equal(s.copies, cases.filter((c) => !c.shared).length, 'one copy in (and out) per collective whose buffer is not shared, none otherwise');
    }
    return out;
  } finally {
    await closeAll(rings);
  }
}

const CASES = [
  { length: 1_000_003, codec: 'fp32', op: 'sum' }, // not divisible by N*K; several messages per stripe chunk
  { length: 1_000_003, codec: 'bf16', op: 'sum' },
  { length: 5, codec: 'fp32', op: 'sum' }, // shorter than N*K: empty slices
  { length: 2, codec: 'bf16', op: 'mean' },
  { length: 300_001, codec: 'fp32', op: 'mean', shared: true }, // the caller's own shared memory: no copy
] as const;

// Thread start-up dominates these tests (each stripe thread loads the ring afresh), so N = 3 runs K = 3
// only; the memory-peer test above covers every N x K.
for (const [n, ks] of [[2, [2, 3]], [3, [3]]] as const) {
  test(`real sockets and threads, N = ${n}: connections ${ks.join(' and ')} give the bytes of connections 1 (fp32, bf16, uneven and tiny lengths)`, async () => {
    const want = await runCase(n, 1, CASES);
    for (const k of ks) {
      const got = await runCase(n, k, CASES);
      got.forEach((bufs, i) => bufs.forEach((b, r) => assert.ok(b.equals(want[i]![r]!), `N ${n} K ${k} case ${i} (${CASES[i]!.length} ${CASES[i]!.codec}): rank ${r} differs from K = 1`)));
      // And every rank holds the same bytes.
      got.forEach((bufs) => bufs.forEach((b) => assert.ok(b.equals(bufs[0]!))));
    }
  });
}

test('neighbours that differ in connections fail to connect with an error naming cluster.ring_connections', async () => {
  const rings = await Promise.all([2, 1].map((connections, rank) => GrpcRing.create({ jobId: 'test-job', rank, worldSize: 2, token: 'secret', connections, connectTimeoutMs: 15_000 })));
  try {
    const t0 = Date.now();
    const results = await Promise.allSettled(rings.map((r) => r.connect(rings.map((x) => x.address))));
    for (const [rank, res] of results.entries()) {
      assert.equal(res.status, 'rejected', `rank ${rank} connected`);
      const err = (res as PromiseRejectedResult).reason as Error;
      assert.ok(err instanceof RingConnectError, `rank ${rank}: ${err.name}`);
      assert.match(err.message, /cluster\.ring_connections differs: rank \d uses \d connection\(s\) per link, rank \d uses \d/);
    }
    assert.ok(Date.now() - t0 < 10_000, 'the mismatch is found at once, not at the connect timeout');
  } finally {
    await closeAll(rings);
  }
});

test('re-forming a striped ring: epoch 0 of 3 ranks, then epoch 1 of 2 ranks on the same ports, broadcast and all-reduce exact', async () => {
  const first = await formRing(3, { connections: 2 });
  const ports = first.map((r) => Number(r.address.split(':')[1]));
  const v0 = first.map((_, r) => randomValues(10_001, 50 + r));
  await Promise.all(first.map((ring, r) => ring.allReduce(v0[r]!, { step: 1 })));
  const want0 = (await memoryStriped(3, 1, 10_001, fp32, 'sum', 50))[0]!;
  v0.forEach((b, r) => assert.ok(bytes(b).equals(bytes(want0)), `epoch 0 rank ${r} differs from an unstriped ring`));
  await closeAll(first);

  const create = async (rank: number): Promise<GrpcRing> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await GrpcRing.create({ jobId: 'test-job', rank, worldSize: 2, token: 'secret', connections: 2, epoch: 1, listenPort: ports[rank]! });
      } catch (err) {
        if (attempt >= 20 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const second = await Promise.all([create(0), create(1)]);
  try {
    await Promise.all(second.map((r) => r.connect(second.map((x) => x.address))));
    assert.equal(second[0]!.epoch, 1);
    // Rank 1 takes rank 0's state bit for bit (odd length: the stripes' parts differ by one), then both reduce.
    const state = [Float32Array.from(v0[0]!), randomValues(10_001, 99)];
    await Promise.all(second.map((ring, r) => ring.broadcast(state[r]!, { step: 5, root: 0 })));
    assert.ok(bytes(state[1]!).equals(bytes(v0[0]!)), 'broadcast over stripes is bit-exact');
    const x = second.map((_, r) => randomValues(7, 70 + r));
    const want = Float32Array.from(x[0]!, (a, i) => a + x[1]![i]!);
    await Promise.all(second.map((ring, r) => ring.allReduce(x[r]!, { step: 6 })));
    assert.ok(bytes(x[0]!).equals(bytes(want)) && bytes(x[1]!).equals(bytes(want)));
  } finally {
    await closeAll(second);
  }
});

/** A TCP relay from an ephemeral port to `target`; `cut()` destroys every connection through it. */
async function relay(target: number, port = 0): Promise<{ port: number; bytes: () => number; cut: () => void; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let moved = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => (client.destroy(), upstream.destroy()));
    }
    client.on('data', (d) => void (moved += d.length));
    upstream.on('data', (d) => void (moved += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => moved,
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () => (sockets.forEach((s) => s.destroy()), new Promise((r) => server.close(() => r()))),
  };
}

test('a stripe connection lost mid-collective breaks the ring like a lost link: both ranks fail with PeerLostError', async () => {
  const rings = await Promise.all([0, 1].map((rank) => GrpcRing.create({ jobId: 'test-job', rank, worldSize: 2, token: 'secret', connections: 2 })));
  const base = Number(rings[0]!.address.split(':')[1]);
  // Rank 1 reaches rank 0 through relays on two consecutive ports (stripe k = port + k).
  let relays: Array<Awaited<ReturnType<typeof relay>>> = [];
  for (let attempt = 0; relays.length < 2; attempt++) {
    const r0 = await relay(base);
    try {
      relays = [r0, await relay(base + 1, r0.port + 1)];
    } catch (err) {
      await r0.close();
      if (attempt >= 20) throw err;
    }
  }
  try {
    const proxied = `127.0.0.1:${relays[0]!.port}`;
    await Promise.all([rings[0]!.connect(rings.map((x) => x.address)), rings[1]!.connect([proxied, rings[1]!.address])]);
    const bufs = rings.map((_, r) => randomValues(8 << 20, r));
    const reduced = rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 1, timeoutMs: 30_000 }));
    const t0 = Date.now();
    while (relays[1]!.bytes() < 1 << 20 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 2));
    assert.ok(relays[1]!.bytes() >= 1 << 20, 'stripe 1 carried data before the cut');
    relays[1]!.cut();
    const results = await Promise.allSettled(reduced);
    for (const [rank, res] of results.entries()) {
      assert.equal(res.status, 'rejected', `rank ${rank} finished a collective over a cut link`);
      const err = (res as PromiseRejectedResult).reason as Error;
      assert.ok(err instanceof PeerLostError, `rank ${rank}: ${err.name}: ${err.message}`);
      assert.equal(rings[rank]!.state, 'broken');
    }
    // Rank 1 lost the stripe it pulls from rank 0: it names rank 0.
    assert.equal(((results[1] as PromiseRejectedResult).reason as PeerLostError).rank, 0);
    await assert.rejects(rings[0]!.allReduce(new Float32Array(4), { step: 2 }), PeerLostError, 'a broken striped ring stays broken');
  } finally {
    await closeAll(rings);
    await Promise.all(relays.map((r) => r.close()));
  }
});
