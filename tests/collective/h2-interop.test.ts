// The node:http2 transport is real gRPC: stock @grpc/grpc-js clients call its server, its client
// calls grpc-js servers, and one ring can mix both transports. Plus its incremental message reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { bf16SumErrorBound } from '../../src/collective/codecs.ts';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import * as svc from '../../src/collective/grpc-service.ts';
import type { PingReply } from '../../src/collective/ring-protocol.ts';
import { GrpcMessageReader, writeGrpcPrefix } from '../../src/collective/grpc-framing.ts';
import { H2CallError, h2Ping, h2Unary } from '../../src/collective/h2-transport.ts';
import { assertBitIdentical, checkResult, closeAll, fillRank, formRing } from './helpers.ts';

function grpcJsPing(address: string, md: grpc.Metadata): Promise<PingReply> {
  const client = svc.newRingClient(address, grpc.credentials.createInsecure(), svc.clientChannelOptions(1024, 65_536));
  return new Promise<PingReply>((resolve, reject) =>
    client.ping({ jobId: 'test-job', rank: 7 }, md, { deadline: Date.now() + 5000 }, (err, reply) => {
      client.close();
      if (err) reject(err);
      else resolve(reply!);
    }),
  );
}

test('a stock grpc-js client pings the h2 server: a valid reply with the token, UNAUTHENTICATED without', async () => {
  const rings = await formRing(2, { transport: 'h2' });
  try {
    const reply = await grpcJsPing(rings[1]!.address, svc.tokenMetadata('secret'));
    assert.deepEqual(reply, { jobId: 'test-job', rank: 1, step: 0, inCollective: false });
    await assert.rejects(grpcJsPing(rings[1]!.address, new grpc.Metadata()), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      assert.match(e.details, /missing or wrong job token/);
      return true;
    });
    assert.equal(rings[1]!.rejected.badToken, 1);
  } finally {
    await closeAll(rings);
  }
});

test('the h2 client pings a grpc-js server; a wrong token and an unknown method get their gRPC status', async () => {
  const rings = await formRing(2, { transport: 'grpc-js' });
  try {
    const reply = await h2Ping(rings[0]!.address, { jobId: 'test-job', rank: 1 }, 'secret', undefined, 5000);
    assert.deepEqual(reply, { jobId: 'test-job', rank: 0, step: 0, inCollective: false });
    await assert.rejects(h2Ping(rings[0]!.address, { jobId: 'test-job', rank: 1 }, 'guess', undefined, 5000), (e: H2CallError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      return true;
    });
    await assert.rejects(h2Unary(rings[0]!.address, '/ringtune.v1.Ring/Nope', new Uint8Array(0), 'secret', undefined, 5000), (e: H2CallError) => {
      assert.equal(e.code, grpc.status.UNIMPLEMENTED);
      return true;
    });
    assert.equal(rings[0]!.rejected.badToken, 1);
  } finally {
    await closeAll(rings);
  }
});

test('the h2 server answers an unknown method with UNIMPLEMENTED to a grpc-js client', async () => {
  const rings = await formRing(1, { transport: 'h2' });
  const client = new grpc.Client(rings[0]!.address, grpc.credentials.createInsecure());
  try {
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/ringtune.v1.Ring/Nope', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e!)),
    );
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  } finally {
    client.close();
    await closeAll(rings);
  }
});

for (const n of [2, 4]) {
  test(`a ring of ${n} mixing grpc-js and h2 ranks all-reduces bit-identically (Pull both ways between them)`, async () => {
    const rings = await Promise.all(
      Array.from({ length: n }, (_, rank) =>
        GrpcRing.create({ jobId: 'test-job', rank, worldSize: n, token: 'secret', messageBytes: 64 * 1024, transport: rank % 2 ? 'h2' : 'grpc-js' }),
      ),
    );
    try {
      await Promise.all(rings.map((r) => r.connect(rings.map((x) => x.address))));
      for (const [step, codec] of [[1, 'fp32'], [2, 'bf16']] as const) {
        const bufs = rings.map((_, r) => fillRank(new Float32Array(300_007), r));
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 30_000 })));
        checkResult(bufs[0]!, n, 'sum', codec === 'fp32' ? 0 : bf16SumErrorBound(n));
        assertBitIdentical(bufs);
      }
      for (const r of rings) assert.equal(r.stats.alignCopies, 0, `rank ${r.rank} (${r.transportName})`);
    } finally {
      await closeAll(rings);
    }
  });
}

test('GrpcMessageReader: any chunking, slots copied at offset 1, stalls without a free slot and resumes', () => {
  const bodies = [0, 1, 5, 300, 17, 4096, 2].map((len, k) => Uint8Array.from({ length: len }, (_, i) => (i * 31 + k) & 255));
  const stream = new Uint8Array(bodies.reduce((a, b) => a + 5 + b.length, 0));
  let at = 0;
  for (const b of bodies) {
    writeGrpcPrefix(stream, at, b.length);
    stream.set(b, at + 5);
    at += 5 + b.length;
  }
  for (const cut of [1, 2, 3, 7, 64, 1000, stream.length]) {
    const free: { bytes: Uint8Array }[] = [{ bytes: new Uint8Array(5000) }, { bytes: new Uint8Array(5000) }];
    const got: { slot: { bytes: Uint8Array }; body: Uint8Array }[] = [];
    let stalls = 0;
    const reader = new GrpcMessageReader(4096, () => free.pop() ?? null, (slot, body) => got.push({ slot, body }), () => stalls++);
    const seen: Uint8Array[] = [];
    for (let p = 0; p < stream.length; p += cut) {
      reader.push(stream.subarray(p, Math.min(stream.length, p + cut)));
      // Consume one message at a time, like the algorithm: copy it out, free its slot, resume.
      while (got.length > 0) {
        const m = got.shift()!;
        assert.equal(m.body.byteOffset - m.slot.bytes.byteOffset, 1);
        seen.push(Uint8Array.from(m.body));
        free.push(m.slot);
        reader.resume();
      }
    }
    assert.equal(reader.isStalled, false);
    assert.deepEqual(seen, bodies, `chunks of ${cut}`);
    assert.ok(cut < 64 || stalls >= 0);
  }
  // Without any free slot the reader stops and keeps the bytes (no loss, no copy).
  const free: { bytes: Uint8Array }[] = [];
  const out: Uint8Array[] = [];
  const r = new GrpcMessageReader(4096, () => free.pop() ?? null, (_s, b) => out.push(Uint8Array.from(b)), () => {});
  r.push(stream);
  assert.equal(r.isStalled, true);
  assert.equal(out.length, 0);
  for (let i = 0; i < 10 && r.isStalled; i++) {
    free.push({ bytes: new Uint8Array(5000) }, { bytes: new Uint8Array(5000) });
    r.resume();
  }
  assert.deepEqual(out, bodies);
  assert.throws(() => new GrpcMessageReader(10, () => ({ bytes: new Uint8Array(20) }), () => {}, () => {}).push(Uint8Array.of(0, 0, 0, 0, 11)), /exceeds/);
});
