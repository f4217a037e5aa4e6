/**
 * An in-process RingPeer for tests and single-process use: N peers joined by bounded queues
 * (`capacity` messages per link, default 2). Sends copy the encoded bytes, so the algorithm's buffer
 * ownership rules are exercised exactly as over a socket, and a full queue makes send() wait, so the
 * algorithm's freedom from deadlock is tested with almost no buffering.
 */
import type { WireCodec } from './codecs.ts';
import type { ChunkHeader, IncomingChunk, RingPeer } from './ring-allreduce.ts';

interface Link {
  queue: IncomingChunk[];
  /** Receiver waiting for a message. */
  onMessage: (() => void) | null;
  /** Sender waiting for room. */
  onRoom: (() => void) | null;
}

export class MemoryPeer implements RingPeer {
  private error: Error | null = null;
  /** Messages sent / received, for tests that count traffic. */
  sent = 0;
  received = 0;

  constructor(
    readonly rank: number,
    private readonly inbound: Link,
    private readonly outbound: Link,
    private readonly capacity: number,
    private readonly all: MemoryPeer[],
  ) {}

  async send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void> {
    while (this.outbound.queue.length >= this.capacity) {
      this.check();
      await new Promise<void>((resolve) => (this.outbound.onRoom = resolve));
    }
    this.check();
    const payload = new Uint8Array(codec.payloadBytes(values.length));
    codec.encode(values, payload);
    this.outbound.queue.push({ ...header, codec, elements: values.length, payload });
    this.sent++;
    const wake = this.outbound.onMessage;
    this.outbound.onMessage = null;
    wake?.();
  }

  async receive(_step: number): Promise<IncomingChunk> {
    while (this.inbound.queue.length === 0) {
      this.check();
      await new Promise<void>((resolve) => (this.inbound.onMessage = resolve));
    }
    this.check();
    const msg = this.inbound.queue.shift()!;
    this.received++;
    const wake = this.inbound.onRoom;
    this.inbound.onRoom = null;
    wake?.();
    return msg;
  }

  /** Like a broken socket: this peer and every other peer of the ring fail from now on. */
  abort(reason: Error): void {
    for (const peer of this.all) {
      if (peer.error) continue;
      peer.error = reason;
      for (const link of [peer.inbound, peer.outbound]) {
        const wakeups = [link.onMessage, link.onRoom];
        link.onMessage = link.onRoom = null;
        for (const wake of wakeups) wake?.();
      }
    }
  }

  private check(): void {
    if (this.error) throw this.error;
  }
}

/** Peers 0..worldSize-1; peer r's outbound link is peer r+1's inbound link. */
export function createMemoryRing(worldSize: number, capacity = 2): MemoryPeer[] {
  const links: Link[] = Array.from({ length: worldSize }, () => ({ queue: [], onMessage: null, onRoom: null }));
  const peers: MemoryPeer[] = [];
  for (let r = 0; r < worldSize; r++) {
    // links[r] carries r -> r+1
    peers.push(new MemoryPeer(r, links[(r - 1 + worldSize) % worldSize]!, links[r]!, capacity, peers));
  }
  return peers;
}
