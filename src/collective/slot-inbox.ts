/**
 * The receive side the two HTTP/2 transports (h2, raw-h2) share: a GrpcMessageReader (grpc-framing.ts)
 * fills one of RECV_SLOTS reused receive slots per message; decoded messages the algorithm has not
 * asked for yet wait in the inbox holding their slot; the message handed over keeps its slot until the
 * next receive(), when it has been reduced. When no slot is free the reader stalls and the left stream
 * is paused; a released slot resumes both. How bytes arrive (node:http2 stream, raw socket) is the
 * transport's; everything after is here.
 */
import { GrpcMessageReader, type Slot } from './grpc-framing.ts';
import type { PeerState } from './peer-state.ts';
import type { IncomingChunk } from './ring-allreduce.ts';
import type { RejectCounters } from './transport.ts';
import { decodeChunk, type DecodedChunk } from './wire.ts';

/** Receive slots: the message being filled, up to RECV_SLOTS - 2 queued, the one being reduced. */
export const RECV_SLOTS = 5;

interface Queued {
  readonly m: DecodedChunk;
  readonly slot: Slot;
}

export interface SlotInboxOptions {
  readonly state: PeerState;
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

  constructor(private readonly o: SlotInboxOptions) {
    // The size both transports used: a body starts at offset 1 of its slot (grpc-framing.ts).
    for (let i = 0; i < RECV_SLOTS; i++) this.freeSlots.push({ bytes: new Uint8Array(8 + o.maxMessageBytes) });
    this.reader = new GrpcMessageReader(o.maxMessageBytes, () => this.freeSlots.pop() ?? null, (slot, body) => this.onMessage(slot, body), o.pauseLeft);
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

  private onMessage(slot: Slot, body: Uint8Array): void {
    let m: DecodedChunk;
    try {
      m = decodeChunk(body);
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
