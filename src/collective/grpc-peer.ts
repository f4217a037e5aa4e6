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
 * Validation (job id, sender rank and step of every message, counted in `rejected`), failure, the
 * send pool and the waiting receive are the PeerState this peer owns (peer-state.ts, shared with
 * H2Peer); an `abort` message from the left fails this peer with the rank it names and is passed on
 * to the right, so every rank learns which rank was lost, not just the neighbours.
 */
import type * as grpc from '@grpc/grpc-js';
import type { WireCodec } from './codecs.ts';
import { PeerLostError, RingClosedError } from './errors.ts';
import { PeerState } from './peer-state.ts';
import type { ChunkHeader, IncomingChunk } from './ring-allreduce.ts';
import type { PullRequest } from './ring-protocol.ts';
import type { PeerOptions, RejectCounters, TransportPeer } from './transport.ts';
import { ChunkEncoder, type ChunkFields, type DecodedChunk } from './wire.ts';

/** Decoded messages held before the left call is paused. */
const INBOX_HIGH = 4;

export class GrpcPeer implements TransportPeer {
  readonly rejected: RejectCounters;
  readonly leftRank: number;
  readonly rightRank: number;
  /** Traffic counters; `alignCopies` counts payloads that arrived misaligned and had to be copied. */
  readonly stats = { messagesSent: 0, messagesReceived: 0, alignCopies: 0 };
  readonly state: PeerState;
  private right: grpc.ServerWritableStream<PullRequest, Uint8Array> | null = null;
  private left: grpc.ClientReadableStream<DecodedChunk> | null = null;
  private readonly encoder: ChunkEncoder;
  private readonly abortBuffer: Uint8Array;
  private readonly inbox: DecodedChunk[] = [];
  private paused = false;

  constructor(private readonly o: PeerOptions) {
    this.rejected = o.rejected;
    this.encoder = new ChunkEncoder(o.jobId);
    this.abortBuffer = new Uint8Array(this.encoder.bufferBytes(0) + 2048);
    const sendBuffers = Array.from({ length: o.inflight }, () => new Uint8Array(this.encoder.bufferBytes(o.maxElements)));
    this.state = new PeerState({ ...o, sendBuffers, stats: this.stats, sendAbort: (fields) => this.sendAbort(fields) });
    this.leftRank = this.state.leftRank;
    this.rightRank = this.state.rightRank;
  }

  /**
   * The right neighbour's Pull call, accepted by the server. Its loss is not fatal by itself (see
   * peer-state.ts): it fails us at our next send or next collective; a neighbour that dies
   * mid-collective is also reported to us around the ring by the abort its own right neighbour sends.
   */
  attachRight(call: grpc.ServerWritableStream<PullRequest, Uint8Array>): void {
    this.right = call;
    const gone = (what: string) => () => this.state.loseRight(`its Pull stream from us ${what}`);
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
      this.state.fail(new PeerLostError(this.leftRank, this.o.where(), `our stream from it failed (${e.details || e.message})`, { cause: e })),
    );
    call.on('end', () => this.state.endLeft());
  }

  async send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    const buf = await this.state.takeSendBuffer();
    const fields = { ...header, rank: this.o.rank, codec: codec.wireId, elements: values.length, abort: false, lostRank: 0, reason: '' };
    const msg = this.encoder.encode(buf, fields, values, codec);
    this.stats.messagesSent++;
    // The write callback fires once grpc-js has handed the bytes to HTTP/2; only then is buf reusable.
    this.right!.write(msg, () => this.state.returnSendBuffer(buf));
  }

  receive(step: number): Promise<IncomingChunk> {
    for (;;) {
      // Messages that already arrived are delivered even after a failure: they may complete the collective.
      const m = this.inbox.shift();
      if (!m) return this.state.waitForMessage(step);
      this.maybeResume();
      if (m.step < step) {
        this.rejected.staleStep++;
        continue;
      }
      return Promise.resolve(this.state.incoming(m));
    }
  }

  abort(reason: Error): void {
    this.state.fail(reason);
  }

  /** Stop quietly (close() of the ring): no more PeerLost errors from closing streams. */
  close(): void {
    this.state.close(new RingClosedError(`rank ${this.o.rank}: the ring was closed`));
    this.right?.end();
    this.left?.cancel();
  }

  private onMessage(m: DecodedChunk): void {
    if (!this.state.admit(m)) return;
    if (this.inbox.length === 0 && this.state.handOver(m.step, () => this.state.incoming(m))) return;
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

  /** Tells the right neighbour (best effort) who was lost; PeerState calls it on the first error. */
  private sendAbort(fields: Omit<ChunkFields, 'jobId'>): void {
    const right = this.right;
    if (!right || right.cancelled || right.destroyed) return;
    const msg = this.encoder.encode(this.abortBuffer, fields, null, null);
    try {
      right.write(msg);
    } catch {
      // The stream is going away anyway; the right neighbour will see that instead.
    }
  }
}
