/**
 * The receive side the two HTTP/2 transports (h2, raw-h2) share: a GrpcMessageReader (grpc-framing.ts)
 * fills one of RECV_SLOTS reused receive slots per message; decoded messages the algorithm has not
 * asked for yet wait in the inbox holding their slot; the message handed over keeps its slot until the
 * next receive(), when it has been reduced. When no slot is free the reader stalls and the left stream
 * is paused; a released slot resumes both. How bytes arrive (node:http2 stream, raw socket) is the
 * transport's; everything after is here.
 */
import type { WireCodec } from './codecs.ts';
import { GrpcMessageReader, type MessagePlacer, type Placement, type Slot } from './grpc-framing.ts';
import type { PeerState } from './peer-state.ts';
import type { ChunkHeader, ExpectedCopy, IncomingChunk } from './ring-allreduce.ts';
import type { RejectCounters } from './transport.ts';
import { ChunkEncoder, decodeChunk, type DecodedChunk } from './wire.ts';

/** Receive slots: the message being filled, up to RECV_SLOTS - 2 queued, the one being reduced. */
export const RECV_SLOTS = 5;

interface Queued {
  readonly m: DecodedChunk;
  readonly slot: Slot;
}

export interface SlotInboxOptions {
  readonly state: PeerState;
  /** Our job id and rank: the header bytes an expected copy must carry are built from them. */
  readonly jobId: string;
  /** Counts payloads read straight into their destination (expectCopies). */
  readonly stats: { placed: number };
  readonly rejected: RejectCounters;
  /** The largest RingChunk accepted (like grpc-js's max_receive_message_length). */
  readonly maxMessageBytes: number;
  /** No slot free: stop reading the left stream (and count the stall). */
  readonly pauseLeft: () => void;
  /** A slot is free again and the reader caught up: read the left stream again. */
  readonly resumeLeft: () => void;
}

export class SlotInbox {
  readonly reader: GrpcMessageReader;
  private readonly freeSlots: Slot[] = [];
  private delivered: Slot | null = null;
  private readonly inbox: Queued[] = [];
  /** Expected copies of the current collective not yet arrived, in arrival order (expectCopies). */
  private plan: Placement[] = [];
  private planAt = 0;
  private readonly encoder: ChunkEncoder;

  constructor(private readonly o: SlotInboxOptions) {
    // The size both transports used: a body starts at offset 1 of its slot (grpc-framing.ts).
    for (let i = 0; i < RECV_SLOTS; i++) this.freeSlots.push({ bytes: new Uint8Array(8 + o.maxMessageBytes) });
    this.encoder = new ChunkEncoder(o.jobId);
    const placer: MessagePlacer = {
      candidate: (bodyLength) => {
        const p = this.plan[this.planAt];
        return p && p.head.length + p.dst.length === bodyLength ? p : null;
      },
      taken: () => {
        this.planAt++;
        this.o.stats.placed++;
      },
      dropped: (slot) => this.release(slot),
    };
    this.reader = new GrpcMessageReader(o.maxMessageBytes, () => this.freeSlots.pop() ?? null, (slot, body, placed) => this.onMessage(slot, body, placed), o.pauseLeft, placer);
  }

  /**
   * The copy messages of one collective (all-gather, fp32) still to come from the left, in arrival
   * order: each payload is read straight into its `dst` instead of a slot, so the algorithm finds it
   * in place and skips the copy. Only a message whose header is byte for byte the one a ringtune
   * sender writes for that (step, round, chunk, part, elements) is placed; anything else takes a slot
   * as before. An empty list ends the plan; a message half placed is then dropped (its collective is
   * over, so no byte may land in the caller's buffer afterwards).
   */
  expectCopies(codec: WireCodec, copies: readonly ExpectedCopy[]): void {
    this.reader.abandonPlacement();
    this.planAt = 0;
    this.plan = copies.map(({ header, dst }) => ({ head: this.expectedHead(header, codec, dst.length), dst: new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength) }));
  }

  private expectedHead(h: ChunkHeader, codec: WireCodec, elements: number): Uint8Array {
    const fields = { step: h.step, round: h.round, chunk: h.chunk, part: h.part, rank: this.o.state.leftRank, codec: codec.wireId, elements, abort: false, lostRank: 0, reason: '' };
    return this.encoder.encodeHeader(fields, codec.payloadBytes(elements)).slice();
  }

  receive(step: number): Promise<IncomingChunk> {
    if (this.delivered) {
      this.release(this.delivered); // the previous message has been reduced by now
      this.delivered = null;
    }
    for (;;) {
      const q = this.inbox.shift();
      if (!q) return this.o.state.waitForMessage(step);
      if (q.m.step < step) {
        this.o.rejected.staleStep++;
        this.release(q.slot);
        continue;
      }
      try {
        return Promise.resolve(this.deliver(q));
      } catch (e) {
        return Promise.reject(e);
      }
    }
  }

  private release(slot: Slot): void {
    this.freeSlots.push(slot);
    if (!this.reader.isStalled) return;
    try {
      if (this.reader.resume() && !this.o.state.failed) this.o.resumeLeft();
    } catch (e) {
      this.o.state.fail(e as Error);
    }
  }

  private onMessage(slot: Slot, body: Uint8Array, placed: Uint8Array | null): void {
    let m: DecodedChunk;
    try {
      m = decodeChunk(body, placed);
    } catch (e) {
      this.freeSlots.push(slot);
      throw e;
    }
    if (!this.o.state.admit(m)) {
      this.freeSlots.push(slot);
      return;
    }
    if (this.inbox.length === 0 && this.o.state.handOver(m.step, () => this.deliver({ m, slot }))) return;
    this.inbox.push({ m, slot });
  }

  /** Hands a message to the algorithm; its slot stays taken until the next receive(). */
  private deliver(q: Queued): IncomingChunk {
    this.delivered = q.slot;
    return this.o.state.incoming(q.m);
  }
}
