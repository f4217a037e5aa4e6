/**
 * The state of one rank's two links that both ring peers keep the same way (GrpcPeer over grpc-js,
 * H2Peer over node:http2). Each peer owns one PeerState and calls it; the state calls the peer back
 * only through `sendAbort`. The peer keeps what is transport-specific: its streams, its queue of
 * received messages and how it frames what it writes.
 *
 *  - Failure: the first error wins. It fails a waiting receive and a waiting sender, sends an abort
 *    naming the lost rank to the right neighbour (so every rank learns which rank was lost, not just
 *    the neighbours) and tells the ring, unless the peer is closing.
 *  - The left link's clean end (the left closed its ring) fails only a receive that finds nothing
 *    more to read, since every message it sent arrives before the end.
 *  - The right link's loss is not fatal by itself: after its last collective a neighbour closes while
 *    we may still be receiving the tail of ours. It fails the next send after RIGHT_GONE_GRACE_MS (the
 *    neighbour may be closing because it lost a rank itself, and the abort naming that rank arrives
 *    from the left within moments) or the next collective.
 *  - Send buffers: a pool allocated once by the peer; a send waits for a free one (backpressure).
 *  - Every message from the left is screened (job id, sender, abort, step) and handed over 4-byte
 *    aligned; at most one receive waits, and only while the peer's queue is empty.
 */
import { codecByWireId } from './codecs.ts';
import { PeerLostError, RingProtocolError } from './errors.ts';
import type { IncomingChunk } from './ring-allreduce.ts';
import type { PeerOptions, PeerSteps } from './transport.ts';
import type { ChunkFields, DecodedChunk } from './wire.ts';

/** How long a rank waits for an abort from the left before blaming a vanished right neighbour. */
export const RIGHT_GONE_GRACE_MS = 250;

export interface PeerStateOptions extends PeerOptions {
  /** The send pool, allocated once by the peer and sized for its framing. */
  readonly sendBuffers: readonly Uint8Array[];
  /** The peer's traffic counters; the state counts received messages and alignment copies in it. */
  readonly stats: { messagesReceived: number; alignCopies: number };
  /** Writes an abort message to the right neighbour (best effort); called once, on the first error unless closing. */
  readonly sendAbort: (fields: Omit<ChunkFields, 'jobId'>) => void;
}

interface Waiter {
  readonly step: number;
  readonly resolve: (m: IncomingChunk) => void;
  readonly reject: (e: Error) => void;
}

export class PeerState implements PeerSteps {
  readonly leftRank: number;
  readonly rightRank: number;
  /** Step of the collective in progress, or null between collectives (set by GrpcRing). */
  activeStep: number | null = null;
  /** Step of the last collective that ended, -1 before the first (set by GrpcRing). */
  lastStep = -1;
  private error: Error | null = null;
  private closing = false;
  private leftEnded = false;
  private rightLost: PeerLostError | null = null;
  private rightLostAt = 0;
  private readonly free: Uint8Array[];
  private roomWaiter: (() => void) | null = null;
  private recvWaiter: Waiter | null = null;
  /** Takes payloads that arrive at an offset typed-array views cannot use (not 4-byte aligned). */
  private readonly scratch: Uint8Array;

  constructor(private readonly o: PeerStateOptions) {
    this.leftRank = (o.rank - 1 + o.worldSize) % o.worldSize;
    this.rightRank = (o.rank + 1) % o.worldSize;
    this.free = [...o.sendBuffers];
    this.scratch = new Uint8Array(o.maxElements * 4 + 4); // + fp16's exponent for a 1-value message
  }

  /** True once a neighbour is gone or the peer failed. */
  get broken(): boolean {
    return this.error !== null || this.leftEnded || this.rightLost !== null;
  }

  /** True once the peer failed (the first error is set). */
  get failed(): boolean {
    return this.error !== null;
  }

  /** True once the right neighbour's stream went away (an abort written to it would be lost). */
  get rightGone(): boolean {
    return this.rightLost !== null;
  }

  /** Throws if the ring cannot run another collective (called before each one). */
  checkUsable(): void {
    if (this.error) throw this.error;
    if (this.leftEnded) this.fail(this.leftEndedError());
    else if (this.rightLost) this.fail(this.rightLost);
    if (this.error) throw this.error;
  }

  /** First error wins: fail the waiters, tell the right neighbour who was lost, tell the ring. */
  fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    const w = this.recvWaiter;
    this.recvWaiter = null;
    w?.reject(err);
    this.wakeSender();
    if (this.closing) return;
    this.o.sendAbort(this.abortFields(err));
    this.o.onFailure(err);
  }

  /** Stop quietly (close() of the ring): fail with `err` but send no abort and tell no one. */
  close(err: Error): void {
    this.closing = true;
    this.fail(err);
  }

  /** The left neighbour ended our stream cleanly: a receive waiting now has nothing more coming. */
  endLeft(): void {
    this.leftEnded = true;
    if (this.recvWaiter) this.fail(this.leftEndedError());
  }

  /** The right neighbour's stream went away (`detail` says how): remember why and when, and let a waiting sender look. */
  loseRight(detail: string): void {
    if (!this.rightLost && !this.closing) {
      this.rightLost = new PeerLostError(this.rightRank, this.o.where(), detail);
      this.rightLostAt = performance.now();
    }
    this.wakeSender();
  }

  /** A free send buffer, waiting for one (backpressure) or failing if the ring broke meanwhile. */
  async takeSendBuffer(): Promise<Uint8Array> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.rightLost) {
        const wait = this.rightLostAt + RIGHT_GONE_GRACE_MS - performance.now();
        if (wait <= 0) {
          this.fail(this.rightLost);
          throw this.error!;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.roomWaiter = null;
            resolve();
          }, wait);
          this.roomWaiter = () => (clearTimeout(timer), resolve());
        });
        continue;
      }
      if (this.free.length > 0) return this.free.pop()!;
      await new Promise<void>((resolve) => (this.roomWaiter = resolve));
    }
  }

  /** A send buffer the transport has finished writing from. */
  returnSendBuffer(buf: Uint8Array): void {
    this.free.push(buf);
    this.wakeSender();
  }

  /**
   * Screens a message from the left: another job's, a non-neighbour's and a finished collective's
   * are dropped and counted; an abort fails this peer with the rank it names. True to deliver it.
   */
  admit(m: DecodedChunk): boolean {
    const rejected = this.o.rejected;
    if (m.jobId !== this.o.jobId) {
      rejected.foreignJob++;
      return false;
    }
    if (m.rank !== this.leftRank) {
      rejected.wrongSender++;
      return false;
    }
    if (m.abort) {
      const detail = `rank ${m.rank} gave up on the ring: ${m.reason || 'no reason given'}`;
      this.fail(new PeerLostError(m.lostRank, this.o.where(), detail));
      return false;
    }
    if (m.step < (this.activeStep ?? this.lastStep + 1)) {
      rejected.staleStep++;
      return false;
    }
    return true;
  }

  /**
   * Gives an admitted message of collective `step` straight to a receive waiting for that step or an
   * earlier one; false if none waits (the peer queues it). `take` makes the chunk; if it throws, the
   * peer fails.
   */
  handOver(step: number, take: () => IncomingChunk): boolean {
    const w = this.recvWaiter;
    if (!w || step < w.step) return false;
    this.recvWaiter = null;
    try {
      w.resolve(take());
    } catch (e) {
      this.fail(e as Error);
    }
    return true;
  }

  /** A receive that found the peer's queue empty: fails if the left ended or the peer failed, else waits for handOver. */
  waitForMessage(step: number): Promise<IncomingChunk> {
    if (!this.error && this.leftEnded) this.fail(this.leftEndedError());
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => (this.recvWaiter = { step, resolve, reject }));
  }

  /** Checks a received chunk against its codec and limits and hands it over 4-byte aligned. */
  incoming(m: DecodedChunk): IncomingChunk {
    const codec = codecByWireId(m.codec);
    if (!codec || m.payload.length !== codec.payloadBytes(m.elements) || m.elements > this.o.maxElements) {
      throw new RingProtocolError(
        `rank ${m.rank} sent a malformed message (codec ${m.codec}, ${m.elements} values, ${m.payload.length} bytes)`,
      );
    }
    let payload = m.payload;
    this.o.stats.messagesReceived++;
    if (payload.byteOffset % 4 !== 0) {
      if (payload.length > 0) this.o.stats.alignCopies++; // a sender that does not pad like wire.ts
      this.scratch.set(payload);
      payload = this.scratch.subarray(0, payload.length);
    }
    return { step: m.step, round: m.round, chunk: m.chunk, part: m.part, codec, elements: m.elements, payload };
  }

  private wakeSender(): void {
    const wake = this.roomWaiter;
    this.roomWaiter = null;
    wake?.();
  }

  private leftEndedError(): PeerLostError {
    return new PeerLostError(this.leftRank, this.o.where(), 'it closed its stream to us (its ring was closed)');
  }

  /** Header fields of the abort message: the rank the error names (else ours) and the current step. */
  private abortFields(err: Error): Omit<ChunkFields, 'jobId'> {
    const named = (err as { rank?: unknown }).rank;
    const lostRank = typeof named === 'number' ? named : this.o.rank;
    const step = this.activeStep ?? this.lastStep;
    return {
      step: Math.max(step, 0), round: 0, chunk: 0, part: 0, rank: this.o.rank, codec: 0, elements: 0,
      abort: true, lostRank, reason: `${err.name}: ${err.message}`,
    };
  }
}
