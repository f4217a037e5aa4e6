// The raw-h2 transport is real gRPC over real HTTP/2: stock @grpc/grpc-js clients call its server, its
// client calls grpc-js and node:http2 servers, one ring mixes all three transports, and its HTTP/2
// layer answers PING / SETTINGS as RFC 9113 says and moves a large message in one DATA frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { bf16SumErrorBound } from '../../src/collective/codecs.ts';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import * as svc from '../../src/collective/grpc-service.ts';
import { h2Ping } from '../../src/collective/h2-transport.ts';
import { CLIENT_PREFACE, RawH2Connection } from '../../src/collective/raw-h2-connection.ts';
import { RawH2CallError, rawH2Ping, rawH2Unary } from '../../src/collective/raw-h2-transport.ts';
import type { PingReply } from '../../src/collective/ring-protocol.ts';
import type { RingTransportName } from '../../src/collective/transport.ts';
import { assertBitIdentical, checkResult, closeAll, fillRank, formRing } from './helpers.ts';

function grpcJsPing(address: string, md: grpc.Metadata): Promise<PingReply> {
  // Default channel options: grpc-js's own 64 KiB window and 16 KiB frames.
  const client = svc.newRingClient(address, grpc.credentials.createInsecure(), {});
  return new Promise<PingReply>((resolve, reject) =>
    client.ping({ jobId: 'test-job', rank: 7 }, md, { deadline: Date.now() + 5000 }, (err, reply) => {
      client.close();
      if (err) reject(err);
      else resolve(reply!);
    }),
  );
}

test('a stock grpc-js client pings the raw-h2 server: a valid reply with the token, UNAUTHENTICATED without, UNIMPLEMENTED for an unknown method', async () => {
  const rings = await formRing(2, { transport: 'raw-h2' });
  const client = new grpc.Client(rings[1]!.address, grpc.credentials.createInsecure());
  try {
    const reply = await grpcJsPing(rings[1]!.address, svc.tokenMetadata('secret'));
    assert.deepEqual(reply, { jobId: 'test-job', rank: 1, step: 0, inCollective: false });
    await assert.rejects(grpcJsPing(rings[1]!.address, new grpc.Metadata()), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      assert.match(e.details, /missing or wrong job token/);
      return true;
    });
    assert.equal(rings[1]!.rejected.badToken, 1);
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/ringtune.v1.Ring/Nope', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e) => resolve(e!)),
    );
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  } finally {
    client.close();
    await closeAll(rings);
  }
});

for (const server of ['grpc-js', 'h2'] as const) {
  test(`the raw-h2 client pings a ${server} server; a wrong token and an unknown method get their gRPC status`, async () => {
    const rings = await formRing(2, { transport: server });
    try {
      const reply = await rawH2Ping(rings[0]!.address, { jobId: 'test-job', rank: 1 }, 'secret', undefined, 5000);
      assert.deepEqual(reply, { jobId: 'test-job', rank: 0, step: 0, inCollective: false });
      await assert.rejects(rawH2Ping(rings[0]!.address, { jobId: 'test-job', rank: 1 }, 'guess', undefined, 5000), (e: RawH2CallError) => {
        assert.equal(e.code, grpc.status.UNAUTHENTICATED);
        assert.match(e.details, /missing or wrong job token/);
        return true;
      });
      await assert.rejects(rawH2Unary(rings[0]!.address, '/ringtune.v1.Ring/Nope', new Uint8Array(0), 'secret', undefined, 5000), (e: RawH2CallError) => {
        assert.equal(e.code, grpc.status.UNIMPLEMENTED);
        return true;
      });
      assert.equal(rings[0]!.rejected.badToken, 1);
    } finally {
      await closeAll(rings);
    }
  });
}

test('the node:http2 client pings the raw-h2 server (nghttp2 Huffman-codes and indexes its headers)', async () => {
  const rings = await formRing(2, { transport: 'raw-h2' });
  try {
    for (let i = 0; i < 3; i++) {
      const reply = await h2Ping(rings[0]!.address, { jobId: 'test-job', rank: 1 }, 'secret', undefined, 5000);
      assert.deepEqual(reply, { jobId: 'test-job', rank: 0, step: 0, inCollective: false });
    }
  } finally {
    await closeAll(rings);
  }
});

for (const n of [2, 3, 4]) {
  test(`a ring of ${n} mixing raw-h2 with grpc-js and h2 ranks all-reduces bit-identically, 1 MiB messages through grpc-js's windows`, async () => {
    const kinds: RingTransportName[] = ['raw-h2', 'grpc-js', 'h2'];
    const rings = await Promise.all(
      Array.from({ length: n }, (_, rank) =>
        GrpcRing.create({ jobId: 'test-job', rank, worldSize: n, token: 'secret', transport: kinds[rank % (n === 2 ? 2 : 3)] }),
      ),
    );
    try {
      await Promise.all(rings.map((r) => r.connect(rings.map((x) => x.address))));
      for (const [step, codec] of [[1, 'fp32'], [2, 'bf16']] as const) {
        const bufs = rings.map((_, r) => fillRank(new Float32Array(1_300_007), r));
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, timeoutMs: 60_000 })));
        checkResult(bufs[0]!, n, 'sum', codec === 'fp32' ? 0 : bf16SumErrorBound(n));
        assertBitIdentical(bufs);
      }
      for (const r of rings) assert.equal(r.stats.alignCopies, 0, `rank ${r.rank} (${r.transportName})`);
    } finally {
      await closeAll(rings);
    }
  });
}

/** A frame as a test peer reads it off the socket. */
interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function frameBytes(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

test('raw-h2 server, byte by byte: SETTINGS (max frame 2^24-1, window 2^31-1) and ACK, PING ACK with the payload, GOAWAY on a bad preface', async () => {
  const server = net.createServer((socket) => {
    const conn = new RawH2Connection(socket, { role: 'server' });
    socket.on('data', (c) => conn.feed(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const talk = (bytes: Buffer, until: (frames: Frame[]) => boolean) =>
    new Promise<Frame[]>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const frames: Frame[] = [];
      s.on('data', (c) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
          const len = buf.readUIntBE(0, 3);
          frames.push({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) });
          buf = buf.subarray(9 + len);
        }
        if (until(frames)) (s.destroy(), resolve(frames));
      });
      s.on('error', reject);
      s.on('close', () => resolve(frames));
      s.write(bytes);
    });
  try {
    const ping = Buffer.from('8 bytes!');
    const frames = await talk(Buffer.concat([CLIENT_PREFACE, frameBytes(4, 0, 0, Buffer.alloc(0)), frameBytes(6, 0, 0, ping)]), (f) =>
      f.some((x) => x.type === 6),
    );
    const settings = frames.find((f) => f.type === 4 && f.flags === 0)!;
    const values = new Map<number, number>();
    for (let i = 0; i < settings.payload.length; i += 6) values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
    assert.equal(values.get(5), 2 ** 24 - 1);
    assert.equal(values.get(4), 2 ** 31 - 1);
    assert.equal(frames.find((f) => f.type === 8 && f.stream === 0)!.payload.readUInt32BE(0), 2 ** 31 - 1 - 65_535);
    assert.ok(frames.some((f) => f.type === 4 && f.flags === 1), 'our SETTINGS are acknowledged');
    const pong = frames.find((f) => f.type === 6)!;
    assert.equal(pong.flags, 1);
    assert.deepEqual(pong.payload, ping);
    const bad = await talk(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), (f) => f.some((x) => x.type === 7));
    const goaway = bad.find((f) => f.type === 7)!;
    assert.equal(goaway.payload.readUInt32BE(4), 1, 'PROTOCOL_ERROR');
  } finally {
    server.close();
  }
});

test('raw-h2 peers move a 3 MiB gRPC message in one DATA frame, straight from the sender\'s buffer', async () => {
  const message = Buffer.alloc(3 << 20);
  for (let i = 0; i < message.length; i += 4093) message[i] = i & 255;
  const server = net.createServer((socket) => {
    const conn = new RawH2Connection(socket, {
      role: 'server',
      onStream: (stream) => {
        stream.respond([[':status', '200'], ['content-type', 'application/grpc']]);
        stream.write(message);
        stream.end([['grpc-status', '0']]);
      },
    });
    socket.on('data', (c) => conn.feed(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const client = new RawH2Connection(socket, { role: 'client' });
  socket.on('data', (c) => client.feed(c));
  try {
    await client.ready;
    const got = Buffer.alloc(message.length);
    let at = 0;
    let trailers: [string, string][] = [];
    await new Promise<void>((resolve, reject) => {
      client.request([[':method', 'POST'], [':path', '/x'], [':scheme', 'http'], [':authority', 'a'], ['content-type', 'application/grpc']], {
        onHeaders: (h, end) => (end ? (trailers = h) : undefined),
        onData: (c) => {
          got.set(c, at);
          at += c.length;
        },
        onEnd: resolve,
        onReset: (code, why) => reject(new Error(`${code} ${why}`)),
      }, true);
    });
    assert.equal(at, message.length);
    assert.ok(got.equals(message));
    assert.deepEqual(trailers, [['grpc-status', '0']]);
    assert.equal(client.stats.dataFrames, 1, 'one DATA frame for the whole message');
  } finally {
    socket.destroy();
    server.close();
  }
});

test('raw-h2 backpressure: a receiver that starts late fills its slots, stops reading the socket, then catches up exactly', async () => {
  const rings = await formRing(2, { transport: 'raw-h2', messageBytes: 4096, inflightMessages: 2 });
  try {
    const bufs = rings.map((_, r) => fillRank(new Float32Array(200_003), r));
    const early = rings[0]!.allReduce(bufs[0]!, { step: 1, timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300)); // rank 0 sends its whole first chunk meanwhile
    await Promise.all([early, rings[1]!.allReduce(bufs[1]!, { step: 1, timeoutMs: 30_000 })]);
    checkResult(bufs[0]!, 2, 'sum', 0);
    assertBitIdentical(bufs);
    const stalls = (rings[1] as unknown as { peer: { stats: { stalls: number } } }).peer.stats.stalls;
    assert.ok(stalls > 0, `the late receiver stalled (${stalls} times)`);
  } finally {
    await closeAll(rings);
  }
});

test('raw-h2 reads the body of large messages from the socket straight into the receive slots', async () => {
  const rings = await formRing(2, { transport: 'raw-h2' }); // 1 MiB messages
  try {
    const bufs = rings.map((_, r) => fillRank(new Float32Array(2_500_001), r));
    await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 1, timeoutMs: 30_000 })));
    checkResult(bufs[0]!, 2, 'sum', 0);
    assertBitIdentical(bufs);
    for (const ring of rings) {
      const stats = (ring as unknown as { peer: { stats: { directReads: number; messagesReceived: number } } }).peer.stats;
      // A 1 MiB message arrives as a 64 KiB read (frame header, message header, first bytes) and the rest straight into its slot.
      assert.ok(stats.directReads >= stats.messagesReceived / 2, JSON.stringify(stats));
      assert.equal(ring.stats.alignCopies, 0);
    }
  } finally {
    await closeAll(rings);
  }
});
