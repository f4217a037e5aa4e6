// Refusals over real gRPC: missing/wrong token (UNAUTHENTICATED), another job, the wrong sender and a
// stale step are refused and counted; a message in another codec than the one due (the exact tail's fp32
// where bf16 is due, or the reverse) fails the collective; TLS and mutual TLS from certificate files made with openssl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import { RingConnectError, RingProtocolError } from '../../src/collective/errors.ts';
import { bf16, fp32, type WireCodec } from '../../src/collective/codecs.ts';
import * as svc from '../../src/collective/grpc-service.ts';
import type { PingReply, PullRequest } from '../../src/collective/ring-protocol.ts';
import { ChunkEncoder } from '../../src/collective/wire.ts';
import { closeAll, formRing, TRANSPORTS } from './helpers.ts';

function ping(address: string, md: grpc.Metadata, jobId = 'test-job', creds = grpc.credentials.createInsecure()) {
  const client = svc.newRingClient(address, creds, svc.clientChannelOptions(1024, 65_536));
  return new Promise<PingReply>((resolve, reject) =>
    client.ping({ jobId, rank: 9 }, md, { deadline: Date.now() + 5000 }, (err, reply) => {
      client.close();
      if (err) reject(err);
      else resolve(reply!);
    }),
  );
}

for (const transport of TRANSPORTS) {
  test(`[${transport}] calls without the job token, or with another token, are refused with UNAUTHENTICATED and counted`, async () => {
    const rings = await formRing(2, { transport });
    try {
      const addr = rings[0]!.address;
      await assert.rejects(ping(addr, new grpc.Metadata()), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
      await assert.rejects(ping(addr, svc.tokenMetadata('guess')), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
      // The data stream too: a Pull with a wrong token gets no chunk, only the status.
      const client = svc.newRingClient(addr, grpc.credentials.createInsecure(), svc.clientChannelOptions(1024, 65_536));
      const call = client.pull({ jobId: 'test-job', rank: 1, worldSize: 2 }, svc.tokenMetadata('guess'));
      const status = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
      client.close();
      assert.equal(status.code, grpc.status.UNAUTHENTICATED);
      assert.equal(rings[0]!.rejected.badToken, 3);
      assert.equal((await ping(addr, svc.tokenMetadata('secret'))).rank, 0); // the right token works
    } finally {
      await closeAll(rings);
    }
  });

  test(`[${transport}] a ring with the wrong token or another job id cannot join, and the refusing rank counts it`, async () => {
    for (const [extra, counter, pattern] of [
      [{ jobId: 'test-job', token: 'other-token' }, 'badToken', /UNAUTHENTICATED.*token mismatch/],
      [{ jobId: 'other-job', token: 'secret' }, 'foreignJob', /PERMISSION_DENIED/],
    ] as const) {
      const good = await GrpcRing.create({ jobId: 'test-job', rank: 0, worldSize: 2, token: 'secret', connectTimeoutMs: 1500, transport });
      const bad = await GrpcRing.create({ rank: 1, worldSize: 2, connectTimeoutMs: 1500, transport, ...extra });
      const peers = [good.address, bad.address];
      const [g, b] = await Promise.allSettled([good.connect(peers), bad.connect(peers)]);
      assert.equal(b.status, 'rejected');
      const err = (b as PromiseRejectedResult).reason;
      assert.ok(err instanceof RingConnectError, String(err));
      assert.equal(err.rank, 0);
      assert.match(err.message, pattern);
      assert.equal(g.status, 'rejected', 'the good rank does not get a right neighbour either');
      assert.equal(good.rejected[counter], 1);
      await Promise.all([good.close(), bad.close()]);
    }
  });

  test(`[${transport}] messages for another job, a stale step or from the wrong sender are dropped and counted`, async () => {
    const { ring, write, close } = await ringWithFakeLeft(transport);
    try {
      // Rank 1 of 2, buffer [10, 20, 30, 40]: chunk 0 = [0, 2), chunk 1 = [2, 4).
      // Round 0 (reduce-scatter): rank 1 receives chunk 0 and adds it. Round 1 (all-gather): it receives
      // the owner's final chunk 1 and copies it.
      const buf = Float32Array.of(10, 20, 30, 40);
      const done = ring.allReduce(buf, { step: 5, timeoutMs: 10_000 });
      const send = (enc: ChunkEncoder, f: { step: number; round: number; chunk: number; rank: number }, values: number[]) => {
        const v = Float32Array.from(values);
        const fields = { ...f, part: 0, codec: fp32.wireId, elements: v.length, abort: false, lostRank: 0, reason: '' };
        write(enc.encode(new Uint8Array(enc.bufferBytes(8)), fields, v, fp32));
      };
      const ours = new ChunkEncoder('test-job');
      send(new ChunkEncoder('other-job'), { step: 5, round: 0, chunk: 0, rank: 0 }, [1000, 1000]); // foreign job
      send(ours, { step: 4, round: 0, chunk: 0, rank: 0 }, [1000, 1000]); // stale step
      send(ours, { step: 5, round: 0, chunk: 0, rank: 1 }, [1000, 1000]); // wrong sender (not our left)
      send(ours, { step: 5, round: 0, chunk: 0, rank: 0 }, [1, 2]);
      send(ours, { step: 5, round: 1, chunk: 1, rank: 0 }, [300, 400]);
      await done;
      assert.deepEqual([...buf], [11, 22, 300, 400]);
      assert.deepEqual(ring.rejected, { foreignJob: 1, staleStep: 1, wrongSender: 1, badToken: 0, staleEpoch: 0 });
    } finally {
      await close();
    }
  });
}

type FakeChunk = { round: number; chunk: number; codec: WireCodec; values: number[] };

/**
 * Rank 1 of 2 all-reduces [10, 20, 30, 40] with bf16 and an exact tail of 2, fed by a fake rank 0 (a
 * bare grpc-js server) that streams `chunks` (step 5, part 0 each). Chunk 0 = [0, 2) is due in bf16 in
 * round 0 (reduce-scatter), chunk 1 = [2, 4) is the tail, due in fp32 in round 1 (all-gather).
 */
async function exactTailFromFake(transport: (typeof TRANSPORTS)[number], chunks: FakeChunk[]): Promise<Float32Array> {
  const { ring, write, close } = await ringWithFakeLeft(transport);
  try {
    const buf = Float32Array.of(10, 20, 30, 40);
    const done = ring.allReduce(buf, { step: 5, codec: 'bf16', exactTail: 2, timeoutMs: 10_000 });
    const enc = new ChunkEncoder('test-job');
    for (const { round, chunk, codec, values } of chunks) {
      const v = Float32Array.from(values);
      const fields = { step: 5, round, chunk, part: 0, rank: 0, codec: codec.wireId, elements: v.length, abort: false, lostRank: 0, reason: '' };
      write(enc.encode(new Uint8Array(enc.bufferBytes(8)), fields, v, codec));
    }
    await done;
    return buf;
  } finally {
    await close();
  }
}

/**
 * Rank 1 of a 2-rank ring whose rank 0 is a fake: a bare grpc-js server speaking ring.proto (for 'h2'
 * also interop in both directions) through which the test streams crafted chunks to rank 1 (`write`).
 */
async function ringWithFakeLeft(transport: (typeof TRANSPORTS)[number]): Promise<{ ring: GrpcRing; write: (bytes: Uint8Array) => void; close: () => Promise<void> }> {
  const fakeServer = new grpc.Server();
  let toRank1: grpc.ServerWritableStream<PullRequest, Uint8Array> | null = null;
  const accepted = new Promise<void>((resolve) =>
    fakeServer.addService(svc.ringService, {
      pull: (call: grpc.ServerWritableStream<PullRequest, Uint8Array>) => {
        toRank1 = call;
        call.sendMetadata(new grpc.Metadata());
        resolve();
      },
      ping: (_call: unknown, cb: grpc.sendUnaryData<PingReply>) => cb(null, { jobId: 'test-job', rank: 0, step: 5, inCollective: true }),
    }),
  );
  const port = await new Promise<number>((res, rej) =>
    fakeServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  const ring = await GrpcRing.create({ jobId: 'test-job', rank: 1, worldSize: 2, token: 'secret', transport });
  const fakeClient = svc.newRingClient(ring.address, grpc.credentials.createInsecure(), svc.clientChannelOptions(1 << 20, 1 << 20));
  const close = async () => {
    fakeClient.close();
    await ring.close();
    fakeServer.forceShutdown();
  };
  try {
    const joined = ring.connect([`127.0.0.1:${port}`, ring.address]);
    const fromRank1 = fakeClient.pull({ jobId: 'test-job', rank: 0, worldSize: 2 }, svc.tokenMetadata('secret'));
    fromRank1.on('data', () => {}); // rank 1's own chunks; the fake does not need them
    fromRank1.on('error', () => {}); // rank 1's stream ends when its collective fails
    await Promise.all([joined, accepted]);
  } catch (err) {
    await close();
    throw err;
  }
  return { ring, write: (bytes) => toRank1!.write(bytes), close };
}

for (const transport of TRANSPORTS) {
  test(`[${transport}] exact tail: a message in fp32 where bf16 is due, or in bf16 where fp32 is due, fails the collective`, async () => {
    // The codecs due: accepted, and the tail copied verbatim.
    const ok = await exactTailFromFake(transport, [{ round: 0, chunk: 0, codec: bf16, values: [1, 2] }, { round: 1, chunk: 1, codec: fp32, values: [300.25, 400.125] }]);
    assert.deepEqual([...ok], [11, 22, 300.25, 400.125]);
    // fp32 for a bf16 message: twice the bytes the receiver budgets for it.
    await assert.rejects(exactTailFromFake(transport, [{ round: 0, chunk: 0, codec: fp32, values: [1, 2] }]), (e: Error) =>
      e instanceof RingProtocolError && /rank 0 sent step 5 round 0 chunk 0 part 0 \(2 fp32 values\) but .* \(2 bf16 values\) was due/.test(e.message));
    // bf16 for the exact tail: it would round the count.
    await assert.rejects(
      exactTailFromFake(transport, [{ round: 0, chunk: 0, codec: bf16, values: [1, 2] }, { round: 1, chunk: 1, codec: bf16, values: [300, 400] }]),
      (e: Error) => e instanceof RingProtocolError && /round 1 chunk 1 part 0 \(2 bf16 values\) but .* \(2 fp32 values\) was due.*exactTail/.test(e.message));
  });
}

/** A CA and one certificate for 127.0.0.1 signed by it, made with the openssl CLI. */
function makeCerts(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=ringtune-test-ca');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  run('x509', '-req', '-in', 'node.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'node.pem', '-days', '1', '-extfile', 'ext.cnf');
  return { caPath: join(dir, 'ca.pem'), certPath: join(dir, 'node.pem'), keyPath: join(dir, 'node.key') };
}

for (const transport of TRANSPORTS) {
  test(`[${transport}] TLS and mutual TLS rings all-reduce; a client without a certificate is refused under mTLS`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringtune-tls-'));
    try {
      const files = makeCerts(dir);
      for (const mutual of [false, true]) {
        const rings = await formRing(3, { transport, tls: { ...files, mutual } });
        try {
          const bufs = rings.map((_, r) => Float32Array.of(r, 1));
          await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 1, timeoutMs: 10_000 })));
          for (const b of bufs) assert.deepEqual([...b], [3, 3]);
          const noCert = grpc.credentials.createSsl(Buffer.from(execFileSync('cat', [files.caPath])));
          const plain = ping(rings[0]!.address, svc.tokenMetadata('secret'), 'test-job', noCert);
          if (mutual) await assert.rejects(plain, (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
          else assert.equal((await plain).rank, 0);
          await assert.rejects(ping(rings[0]!.address, svc.tokenMetadata('secret')), 'plaintext is refused by a TLS ring');
        } finally {
          await closeAll(rings);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
