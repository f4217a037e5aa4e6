// GrpcRing over real gRPC on 127.0.0.1 ephemeral ports, several rings in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16SumErrorBound } from '../../src/collective/codecs.ts';
import * as net from 'node:net';
import { CollectiveTimeoutError, RingClosedError, RingConnectError } from '../../src/collective/errors.ts';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import { assertBitIdentical, checkResult, closeAll, fillRank, formRing, TRANSPORTS } from './helpers.ts';

for (const transport of TRANSPORTS) {
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`[${transport}] gRPC ring, world size ${n}: awkward lengths, both codecs, bit-identical, several steps on one ring`, async () => {
      // 12-byte messages (3 values) split even a 7-value buffer into pipelined parts.
      const rings = await formRing(n, { transport, messageBytes: 12 });
      try {
        let step = 0;
        for (const length of [0, 1, 7, 1000]) {
          for (const codec of ['fp32', 'bf16'] as const) {
            const bufs = rings.map((_, r) => fillRank(new Float32Array(length), r));
            step++;
            await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 20_000 })));
            for (const b of bufs) checkResult(b, n, 'sum', codec === 'fp32' ? 0 : bf16SumErrorBound(n));
            assertBitIdentical(bufs);
          }
        }
        assert.deepEqual(rings[0]!.rejected, { foreignJob: 0, staleStep: 0, wrongSender: 0, badToken: 0, staleEpoch: 0 });
      } finally {
        await closeAll(rings);
      }
    });
  }

  for (const n of [2, 3, 8]) {
    test(`[${transport}] gRPC ring, world size ${n}: 1_000_003 values in 64 KiB messages, fp32 + bf16 mean`, async () => {
      const rings = await formRing(n, { transport, messageBytes: 64 * 1024 });
      try {
        const length = 1_000_003;
        const bufs = rings.map((_, r) => fillRank(new Float32Array(length), r));
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 1, codec: 'fp32', timeoutMs: 60_000 })));
        checkResult(bufs[n - 1]!, n, 'sum', 0);
        assertBitIdentical(bufs);
        for (const [r, b] of bufs.entries()) fillRank(b, r); // same buffers reused for the next step
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 2, codec: 'bf16', op: 'mean', timeoutMs: 60_000 })));
        checkResult(bufs[0]!, n, 'mean', bf16SumErrorBound(n));
        assertBitIdentical(bufs);
        // The pad field lands every payload 4-byte aligned in grpc-js's buffer: decoded in place.
        const stats = rings[0]!.stats;
        assert.ok(stats.messagesReceived > 0);
        assert.equal(stats.alignCopies, 0);
      } finally {
        await closeAll(rings);
      }
    });
  }

  test(`[${transport}] a rank that never joins the collective: the others time out naming it, within the timeout`, async () => {
    const rings = await formRing(3, { transport });
    try {
      const bufs = rings.map((_, r) => fillRank(new Float32Array(100), r));
      const t0 = performance.now();
      const results = await Promise.allSettled([0, 1].map((r) => rings[r]!.allReduce(bufs[r]!, { step: 1, timeoutMs: 800 })));
      const elapsed = performance.now() - t0;
      for (const res of results) {
        assert.equal(res.status, 'rejected');
        const err = (res as PromiseRejectedResult).reason;
        assert.ok(err instanceof CollectiveTimeoutError || err.name === 'PeerLostError', String(err));
        assert.equal(err.rank, 2, err.message);
        assert.match(err.message, /rank 2/);
      }
      assert.ok(elapsed < 800 + 400, `failed after ${elapsed} ms`);
      assert.equal(rings[0]!.state, 'broken');
      await assert.rejects(rings[0]!.allReduce(bufs[0]!, { step: 2 }), /rank 2/); // a broken ring stays broken
    } finally {
      await closeAll(rings);
    }
  });

  test(`[${transport}] close() fails a pending collective with RingClosedError and later calls too`, async () => {
    const rings = await formRing(2, { transport });
    const pending = rings[0]!.allReduce(new Float32Array(10), { step: 1, timeoutMs: 10_000 });
    const rejected = assert.rejects(pending, RingClosedError);
    await new Promise((r) => setTimeout(r, 50));
    await rings[0]!.close();
    await rejected;
    await assert.rejects(rings[0]!.allReduce(new Float32Array(10), { step: 2 }), RingClosedError);
    await rings[1]!.close();
  });

  test(`[${transport}] steps must increase and only one collective runs at a time`, async () => {
    const rings = await formRing(1, { transport });
    try {
      const buf = Float32Array.of(1, 2, 3);
      await rings[0]!.allReduce(buf, { step: 5, op: 'mean' });
      assert.deepEqual([...buf], [1, 2, 3]);
      await assert.rejects(rings[0]!.allReduce(buf, { step: 5 }), /must be an integer above the previous step 5/);
    } finally {
      await closeAll(rings);
    }
  });

  test(`[${transport}] connect() to a rank nobody listens on fails with RingConnectError naming it, near connectTimeoutMs`, async () => {
    const free = net.createServer();
    const port = await new Promise<number>((resolve) => free.listen(0, '127.0.0.1', () => resolve((free.address() as net.AddressInfo).port)));
    await new Promise((resolve) => free.close(resolve));
    const ring = await GrpcRing.create({ jobId: 'test-job', rank: 1, worldSize: 2, token: 'secret', transport, connectTimeoutMs: 700 });
    try {
      const t0 = performance.now();
      await assert.rejects(ring.connect([`127.0.0.1:${port}`, ring.address]), (e: unknown) => e instanceof RingConnectError && e.rank === 0);
      const elapsed = performance.now() - t0;
      assert.ok(elapsed < 700 + 1500, `failed after ${elapsed} ms`);
      assert.equal(ring.state, 'broken');
    } finally {
      await ring.close();
    }
  });
}

test('ring.costs counts collectives, wall and CPU seconds, and payload bytes sent = 2(N-1)/N x buffer x bytes per value', async () => {
  const rings = await formRing(3, { transport: 'raw-h2' });
  try {
    let step = 0;
    for (const codec of ['fp32', 'fp32', 'bf16'] as const) {
      const bufs = rings.map((_, r) => fillRank(new Float32Array(3000), r));
      step++;
      await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 20_000 })));
    }
    // 2 fp32 collectives: 2 x 4/3 x 3000 x 4 = 32000 bytes; 1 bf16: 4/3 x 3000 x 2 = 8000 bytes.
    for (const ring of rings) {
      const c = ring.costs;
      assert.equal(c.collectives, 3);
      assert.equal(c.payloadBytesSent, 40_000);
      assert.ok(c.wallSeconds > 0 && c.cpuSeconds > 0, JSON.stringify(c));
    }
  } finally {
    await closeAll(rings);
  }
});
