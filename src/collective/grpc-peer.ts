/**
 * RingPeer over gRPC streams: `right` is the Pull call our right neighbour opened on our server (we
 * write chunks into it), `left` is the Pull call we opened on our left neighbour (we read from it).
 *
 * Buffers. `inflight` wire buffers of one message each are allocated once; send() encodes into a
 * free one and it returns to the pool when grpc-js has written it. So at most `inflight` messages are
 * queued per link on the sending side; on the receiving side at most INBOX_HIGH decoded messages wait
 * before we pause the call, which stops HTTP/2 window updates and so stalls the sender (backpressure
 * end to end, never unbounded buffering). One aligned scratch buffer takes payloads that arrive at an
 * odd byte offset.
 *
 * Validation (every message): job id, sender rank and step. Rejected messages are dropped and
 * counted in `rejected`; an `abort` message from the left fails this peer with the rank it names and
 * is passed on to the right, so every rank learns which rank was lost, not just the neighbours.
 */
import type * as grpc from '@grpc/grpc-js';
import type { WireCodec } from './codecs.ts';
import { PeerLostError, RingClosedError } from './errors.ts';
import type { ChunkHeader, IncomingChunk, RingPeer } from './ring-allreduce.ts';
import type { PullRequest } from './ring-protocol.ts';
import { PeerLifecycle } from './peer-lifecycle.ts';
import type { PeerOptions, RejectCounters } from './transport.ts';
import { ChunkEncoder, type DecodedChunk } from './wire.ts';

/** How long a send waits, once the right stream is gone, for an abort from the left naming the real loss. */
export { RIGHT_GONE_GRACE_MS } from './peer-lifecycle.ts';

/** Decoded messages held before the left call is paused. */
const INBOX_HIGH = 4;

export class GrpcPeer extends PeerLifecycle implements RingPeer {
  readonly rejected: RejectCounters;
  readonly leftRank: number;
  readonly rightRank: number;
  private right: grpc.ServerWritableStream<PullRequest, Uint8Array> | null = null;
  private left: grpc.ClientReadableStream<DecodedChunk> | null = null;
  private readonly encoder: ChunkEncoder;
  private readonly abortBuffer: Uint8Array;
  private readonly inbox: DecodedChunk[] = [];
  private paused = false;
  /** Traffic counters; `alignCopies` counts payloads that arrived misaligned and had to be copied. */
  readonly stats = { messagesSent: 0, messagesReceived: 0, alignCopies: 0 };
  /** Step of the collective in progress, or null between collectives. */

  constructor(private readonly o: PeerOptions) {
    super(o);
    this.rejected = o.rejected;
    this.leftRank = (o.rank - 1 + o.worldSize) % o.worldSize;
    this.rightRank = (o.rank + 1) % o.worldSize;
    this.encoder = new ChunkEncoder(o.jobId);
    for (let i = 0; i < o.inflight; i++) this.free.push(new Uint8Array(this.encoder.bufferBytes(o.maxElements)));
    this.abortBuffer = new Uint8Array(this.encoder.bufferBytes(0) + 2048);
  }

  get failure(): Error | null {
    return this.error;
  }

  /**
   * The right neighbour's Pull call, accepted by the server. Its loss is not fatal by itself: after
   * its last collective a neighbour closes while we may still be receiving the tail of ours from the
   * left. It fails us at our next send (or next collective); a neighbour that dies mid-collective is
   * also reported to us around the ring by the abort its own right neighbour sends.
   */
  attachRight(call: grpc.ServerWritableStream<PullRequest, Uint8Array>): void {
    this.right = call;
    const gone = (what: string) => () => this.markRightGone(this.rightRank, what);
    call.on('cancelled', gone('was cancelled (connection closed)'));
    call.on('error', gone('failed'));
  }

  /**
   * Our Pull call on the left neighbour. An error (reset connection, dead process) fails us at once
   * and is passed down the ring; a clean end (the left closed its ring) only fails a receive that
   * finds nothing more to read, since every message it sent arrives before the end.
   */
  attachLeft(call: grpc.ClientReadableStream<DecodedChunk>): void {
    this.left = call;
    call.on('data', (m: DecodedChunk) => this.onMessage(m));
    call.on('error', (e: grpc.ServiceError) =>
      this.fail(new PeerLostError(this.leftRank, this.o.where(), `our stream from it failed (${e.details || e.message})`, { cause: e })),
    );
    call.on('end', () => {
      this.leftEnded = true;
      if (this.recvWaiter) this.fail(this.leftEndedError());
    });
  }

  async send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    const buf = await this.takeSendBuffer();
    const fields = { ...header, rank: this.o.rank, codec: codec.wireId, elements: values.length, abort: false, lostRank: 0, reason: '' };
    const msg = this.encoder.encode(buf, fields, values, codec);
    this.stats.messagesSent++;
    // The write callback fires once grpc-js has handed the bytes to HTTP/2; only then is buf reusable.
    this.right!.write(msg, () => {
      this.free.push(buf);
      this.wakeSender();
    });
  }

  receive(step: number): Promise<IncomingChunk> {
    for (;;) {
      // Messages that already arrived are delivered even after a failure: they may complete the collective.
      const m = this.inbox.shift();
      if (!m) {
        if (!this.error && this.leftEnded) this.fail(this.leftEndedError());
        if (this.error) return Promise.reject(this.error);
        return new Promise((resolve, reject) => (this.recvWaiter = { step, resolve, reject }));
      }
      this.maybeResume();
      if (m.step < step) {
        this.rejected.staleStep++;
        continue;
      }
      return Promise.resolve(this.incoming(m));
    }
  }

  abort(reason: Error): void {
    this.fail(reason);
  }

  /** Stop quietly (close() of the ring): no more PeerLost errors from closing streams. */
  close(): void {
    this.closing = true;
    this.fail(new RingClosedError(`rank ${this.o.rank}: the ring was closed`));
    this.right?.end();
    this.left?.cancel();
  }

  private onMessage(m: DecodedChunk): void {
    if (m.jobId !== this.o.jobId) {
      this.rejected.foreignJob++;
      return;
    }
    if (m.rank !== this.leftRank) {
      this.rejected.wrongSender++;
      return;
    }
    if (m.abort) {
      const detail = `rank ${m.rank} gave up on the ring: ${m.reason || 'no reason given'}`;
      this.fail(new PeerLostError(m.lostRank, this.o.where(), detail));
      return;
    }
    const current = this.activeStep ?? this.lastStep + 1;
    if (m.step < current) {
      this.rejected.staleStep++;
      return;
    }
    const w = this.recvWaiter;
    if (w && this.inbox.length === 0 && m.step >= w.step) {
      this.recvWaiter = null;
      try {
        w.resolve(this.incoming(m));
      } catch (e) {
        this.fail(e as Error);
      }
      return;
    }
    this.inbox.push(m);
    if (this.inbox.length >= INBOX_HIGH && !this.paused) {
      this.paused = true;
      this.left?.pause();
    }
  }

  private maybeResume(): void {
    if (this.paused && this.inbox.length < INBOX_HIGH / 2) {
      this.paused = false;
      this.left?.resume();
    }
  }

  /** First error wins: fail waiters, tell the ring, and tell the right neighbour who was lost. */
  protected sendAbort(err: Error): void {
    const right = this.right;
    if (!right || right.cancelled || right.destroyed) return;
    const msg = this.encoder.encode(this.abortBuffer, this.abortFields(err), null, null);
    try {
      right.write(msg);
    } catch {
      // The stream is going away anyway; the right neighbour will see that instead.
    }
  }
}
