/**
 * RingPeer over the raw-h2 transport's streams (raw-h2-connection.ts): `right` is the Pull stream our
 * right neighbour opened on our server (we write RingChunk messages into it), `left` is the Pull
 * stream we opened on our left neighbour (we read from it). Same buffers and rules as H2Peer
 * (h2-peer.ts), with the HTTP/2 layer ours:
 *
 *  - send: `inflight` buffers allocated once; bf16 is encoded (prefix + RingChunk) into a free one,
 *    fp32 only its prefix + header, the values going from the caller's array (sendInPlace). The
 *    connection writes each message as one DATA frame to a ringtune peer (its SETTINGS_MAX_FRAME_SIZE
 *    is 16 MiB - 1), as 16 KiB frames to a stock grpc-js peer, without copying; the buffer returns to
 *    the pool in the socket's write callback.
 *  - receive: the shared SlotInbox (slot-inbox.ts) fills one of RECV_SLOTS receive slots per
 *    message: the socket reads the rest of a large message straight into the slot (directTarget), the
 *    rest of the bytes come from a 64 KiB read buffer and are copied (raw-h2-transport.ts). With no free
 *    slot the reader keeps a copy of the rest of the read buffer and the socket stops being read
 *    (TCP backpressure: the sender's socket fills and its write callbacks stop).
 *
 * Validation, failure, the send pool and the waiting receive are the PeerState this peer owns
 * (peer-state.ts, shared with the other transports).
 */
import type { WireCodec } from './codecs.ts';
import { PeerLostError, RingClosedError } from './errors.ts';
import { decodeGrpcMessage, frameChunk, writeGrpcPrefix } from './grpc-framing.ts';
import { PeerState } from './peer-state.ts';
import { SlotInbox } from './slot-inbox.ts';
import { CONNECTION_LOST, type RawH2Stream } from './raw-h2-connection.ts';
import type { HeaderList } from './raw-h2-hpack.ts';
import type { ChunkHeader, ExpectedCopy, IncomingChunk } from './ring-allreduce.ts';
import type { PeerOptions, RejectCounters, TransportPeer } from './transport.ts';
import { ChunkEncoder, type ChunkFields } from './wire.ts';

/** The first value of `name` in a header list. */
export function header(h: HeaderList, name: string): string | undefined {
  for (const [n, v] of h) if (n === name) return v;
  return undefined;
}

export class RawH2Peer implements TransportPeer {
  readonly rejected: RejectCounters;
  readonly leftRank: number;
  readonly rightRank: number;
  /** Traffic counters; `alignCopies` counts payloads that arrived misaligned and had to be copied. */
  readonly stats = { messagesSent: 0, messagesReceived: 0, alignCopies: 0, dataChunks: 0, stalls: 0, directReads: 0, placed: 0 };
  readonly state: PeerState;
  private right: RawH2Stream | null = null;
  private left: RawH2Stream | null = null;
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

  /** The right neighbour's Pull stream (accepted, response headers sent). */
  attachRight(stream: RawH2Stream): void {
    this.right = stream;
    // Ignored once closing (PeerState.loseRight): our own close() ends this stream.
    stream.handlers = {
      onHeaders: () => {},
      onData: () => {},
      onEnd: () => {},
      onReset: (code) =>
        this.state.loseRight(code === CONNECTION_LOST ? 'its Pull stream from us was cancelled (connection closed)' : `its Pull stream from us was reset (HTTP/2 code ${code})`),
    };
  }

  /** Our Pull stream on the left neighbour (request sent): its handlers. */
  leftHandlers(): RawH2Stream['handlers'] {
    let status: string | undefined;
    let details = '';
    const lost = (why: string) => this.state.fail(new PeerLostError(this.leftRank, this.o.where(), `our stream from it failed (${why})`));
    return {
      onHeaders: (h) => {
        const s = header(h, 'grpc-status'); // trailers, or a trailers-only response (a refusal)
        if (s !== undefined) {
          status = s;
          details = decodeGrpcMessage(header(h, 'grpc-message'));
        }
      },
      onData: (chunk) => {
        this.stats.dataChunks++;
        try {
          this.received.reader.push(chunk, true);
        } catch (e) {
          this.state.fail(e as Error);
          this.left?.reset();
        }
      },
      onEnd: () => {
        if (status === '0') this.state.endLeft(); // a receive waits only while the inbox is empty
        else lost(status === undefined ? 'it ended without a gRPC status' : `gRPC status ${status}: ${details}`);
      },
      onReset: (code, why) => lost(code === CONNECTION_LOST ? why : `stream reset, HTTP/2 code ${code}`),
      // The socket reads straight into the receive slot while a message body is in progress.
      target: () => (this.state.failed ? null : this.received.reader.directTarget()),
      filled: (n) => {
        this.stats.dataChunks++;
        this.stats.directReads++;
        this.received.reader.directFilled(n);
      },
    };
  }

  attachLeft(stream: RawH2Stream): void {
    this.left = stream;
  }

  async send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    if (codec.name === 'fp32' && values.length > 0) return this.sendInPlace(header, values, codec);
    const buf = await this.state.takeSendBuffer();
    const fields = { ...header, rank: this.o.rank, codec: codec.wireId, elements: values.length, abort: false, lostRank: 0, reason: '' };
    const frame = this.frame(buf, fields, values, codec);
    this.stats.messagesSent++;
    // The callback fires once the bytes are on the socket; only then is buf reusable.
    this.right!.write(frame, (err?: Error | null) => {
      if (err) this.state.loseRight(`writing to its Pull stream failed (${err.message})`);
      this.state.returnSendBuffer(buf);
    });
  }

  /**
   * fp32 straight from the caller's array: prefix + RingChunk header from `head`, then the values'
   * own bytes, as one DATA frame (no encode copy). Resolves only once the bytes are on the socket, so
   * the algorithm, which awaits each send, never changes values still queued for writing and cannot
   * return from a collective with bytes of it still unsent. The send pool stays the limit for the
   * messages queued (one buffer taken per message, holding nothing but the slot).
   */
  private async sendInPlace(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    const buf = await this.state.takeSendBuffer();
    const payload = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const fields = { ...header, rank: this.o.rank, codec: codec.wireId, elements: values.length, abort: false, lostRank: 0, reason: '' };
    const h = this.encoder.encodeHeader(fields, payload.length);
    writeGrpcPrefix(buf, 0, h.length + payload.length);
    buf.set(h, 5);
    this.stats.messagesSent++;
    await new Promise<void>((resolve) =>
      this.right!.write([buf.subarray(0, 5 + h.length), payload], (err?: Error | null) => {
        if (err) this.state.loseRight(`writing to its Pull stream failed (${err.message})`);
        this.state.returnSendBuffer(buf);
        resolve();
      }),
    );
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
    this.right?.end([['grpc-status', '0']]);
    this.left?.reset(); // RST_STREAM CANCEL, like grpc-js's call.cancel()
  }

  /** Tells the right neighbour (best effort) who was lost; PeerState calls it on the first error. */
  private sendAbort(fields: Omit<ChunkFields, 'jobId'>): void {
    const right = this.right;
    if (!right || right.closed || right.localEnded || this.state.rightGone) return;
    right.write(this.frame(this.abortBuffer, fields, null, null), () => {});
  }
}
