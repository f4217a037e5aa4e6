/**
 * RingPeer over node:http2 streams that speak gRPC (h2-transport.ts opens and accepts them):
 * `right` is the Pull stream our right neighbour opened on our server (we write RingChunk messages
 * into it), `left` is the Pull stream we opened on our left neighbour (we read from it).
 *
 * Buffers, all allocated once per ring:
 *  - send: `inflight` buffers of one gRPC message each (5-byte prefix + RingChunk). send() encodes
 *    into a free one (wire.ts puts the payload on a 4-byte boundary) and writes prefix + message as
 *    one view; the buffer returns to the pool only when node's write callback fired (the bytes are
 *    on the socket). So at most `inflight` messages are queued per link (backpressure).
 *  - receive (slot-inbox.ts, shared with raw-h2): RECV_SLOTS slots of one message each. GrpcMessageReader parses the 5-byte prefixes out
 *    of the DATA chunks incrementally and copies message bytes straight into a free slot (never a
 *    Buffer.concat); a complete message is decoded in place (payload = view of the slot, aligned for
 *    our own senders and grpc-js's, since the slot puts the message at offset 1 mod 4). A slot is
 *    freed when the message is rejected or when the algorithm asks for the next one (IncomingChunk
 *    is valid until the next receive()). With no free slot the reader keeps the rest of the chunk
 *    (a view, no copy) and pauses the stream, which stops HTTP/2 window updates: the sender stalls.
 *
 * Validation (job id, sender rank and step of every message, counted in `rejected`), failure, the
 * send pool and the waiting receive are the PeerState this peer owns (peer-state.ts, shared with
 * GrpcPeer); an abort from the left fails this peer with the rank it names and is passed on to the right.
 */
import type * as http2 from 'node:http2';
import type { WireCodec } from './codecs.ts';
import { PeerLostError, RingClosedError } from './errors.ts';
import { PeerState } from './peer-state.ts';
import { SlotInbox } from './slot-inbox.ts';
import type { ChunkHeader, ExpectedCopy, IncomingChunk } from './ring-allreduce.ts';
import type { PeerOptions, RejectCounters, TransportPeer } from './transport.ts';
import { decodeGrpcMessage, frameChunk } from './grpc-framing.ts';
import { ChunkEncoder, type ChunkFields } from './wire.ts';

export class H2Peer implements TransportPeer {
  readonly rejected: RejectCounters;
  readonly leftRank: number;
  readonly rightRank: number;
  /** Traffic counters; `alignCopies` counts payloads that arrived misaligned and had to be copied. */
  readonly stats = { messagesSent: 0, messagesReceived: 0, alignCopies: 0, dataChunks: 0, stalls: 0, placed: 0 };
  readonly state: PeerState;
  private right: http2.ServerHttp2Stream | null = null;
  private left: http2.ClientHttp2Stream | null = null;
  private readonly encoder: ChunkEncoder;
  private readonly abortBuffer: Uint8Array;
  private readonly received: SlotInbox;

  /** `maxMessageBytes`: the largest RingChunk accepted (like grpc-js's max_receive_message_length). */
  constructor(private readonly o: PeerOptions & { maxMessageBytes: number }) {
    this.rejected = o.rejected;
    this.encoder = new ChunkEncoder(o.jobId);
    // 8 bytes in front of the message: its 5-byte prefix goes right before wherever the encoder starts.
    const sendBuffers = Array.from({ length: o.inflight }, () => new Uint8Array(8 + this.encoder.bufferBytes(o.maxElements)));
    this.abortBuffer = new Uint8Array(8 + this.encoder.bufferBytes(0) + 2048);
    this.state = new PeerState({ ...o, sendBuffers, stats: this.stats, sendAbort: (fields) => this.sendAbort(fields) });
    this.leftRank = this.state.leftRank;
    this.rightRank = this.state.rightRank;
    this.received = new SlotInbox({
      state: this.state, rejected: o.rejected, maxMessageBytes: o.maxMessageBytes, jobId: o.jobId, stats: this.stats,
      pauseLeft: () => {
        this.stats.stalls++;
        this.left?.pause();
      },
      resumeLeft: () => this.left?.resume(),
    });
  }

  /** The right neighbour's Pull stream (accepted, response headers sent). See GrpcPeer.attachRight. */
  attachRight(stream: http2.ServerHttp2Stream): void {
    this.right = stream;
    // Ignored once closing (PeerState.loseRight): our own close() ends this stream.
    const gone = (what: string) => () => this.state.loseRight(`its Pull stream from us ${what}`);
    stream.on('aborted', gone('was cancelled (connection closed)'));
    stream.on('error', gone('failed'));
    stream.on('close', gone('was closed'));
  }

  /** Our Pull stream on the left neighbour (request sent). See GrpcPeer.attachLeft. */
  attachLeft(stream: http2.ClientHttp2Stream): void {
    this.left = stream;
    let status: string | undefined;
    let details = '';
    let endedOk = false; // grpc-status 0, then end of stream
    const statusOf = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        details = decodeGrpcMessage(h['grpc-message']);
      }
    };
    stream.on('response', statusOf); // trailers-only responses (refusals) carry the status here
    stream.on('trailers', statusOf);
    stream.on('data', (chunk: Buffer) => {
      this.stats.dataChunks++;
      try {
        this.received.reader.push(chunk);
      } catch (e) {
        this.state.fail(e as Error);
        stream.close();
      }
    });
    const lost = (why: string, cause?: unknown) =>
      this.state.fail(new PeerLostError(this.leftRank, this.o.where(), `our stream from it failed (${why})`, { cause }));
    stream.on('end', () => {
      if (status === '0') {
        endedOk = true;
        this.state.endLeft(); // a receive waits only while the inbox is empty
      } else {
        lost(status === undefined ? 'it ended without a gRPC status' : `gRPC status ${status}: ${details}`);
      }
    });
    stream.on('error', (e: Error) => lost(e.message, e));
    stream.on('close', () => {
      if (!endedOk) lost(`stream closed, HTTP/2 code ${stream.rstCode ?? '?'}`);
    });
  }

  async send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    const buf = await this.state.takeSendBuffer();
    const fields = { ...header, rank: this.o.rank, codec: codec.wireId, elements: values.length, abort: false, lostRank: 0, reason: '' };
    const frame = this.frame(buf, fields, values, codec);
    this.stats.messagesSent++;
    // The callback fires once node has written the bytes to the socket; only then is buf reusable.
    this.right!.write(frame, (err?: Error | null) => {
      if (err) this.state.loseRight(`writing to its Pull stream failed (${err.message})`);
      this.state.returnSendBuffer(buf);
    });
  }

  /** prefix + RingChunk in `buf`, as one view. */
  private frame(buf: Uint8Array, fields: Omit<ChunkFields, 'jobId'>, values: Float32Array | null, codec: WireCodec | null): Uint8Array {
    return frameChunk(this.encoder, buf, fields, values, codec);
  }

  receive(step: number): Promise<IncomingChunk> {
    return this.received.receive(step);
  }

  /** fp32 all-gather payloads go straight into the caller's buffer (slot-inbox.ts expectCopies). */
  expectCopies(codec: WireCodec, copies: readonly ExpectedCopy[]): void {
    this.received.expectCopies(codec, copies);
  }

  abort(reason: Error): void {
    this.state.fail(reason);
  }

  close(): void {
    this.state.close(new RingClosedError(`rank ${this.o.rank}: the ring was closed`));
    const right = this.right;
    if (right && !right.closed && !right.destroyed) right.end(); // trailers grpc-status 0 follow (h2-transport.ts)
    this.left?.close(); // RST_STREAM CANCEL, like grpc-js's call.cancel()
  }

  /** Tells the right neighbour (best effort) who was lost; PeerState calls it on the first error. */
  private sendAbort(fields: Omit<ChunkFields, 'jobId'>): void {
    const right = this.right;
    if (!right || right.closed || right.destroyed || this.state.rightGone) return;
    const frame = this.frame(this.abortBuffer, fields, null, null);
    try {
      right.write(frame, () => {});
    } catch {
      // The stream is going away anyway; the right neighbour will see that instead.
    }
  }
}
