/**
 * What both ring transports (grpc-js and node:http2) share about a peer's life: the first error wins
 * and fails a pending receive and a waiting sender; a bounded pool of send buffers; the grace given to
 * a right neighbour whose stream went away (it may be closing because it lost a rank itself, and the
 * abort naming that rank arrives from the left within moments); and the abort message's fields.
 */
import { codecByWireId } from './codecs.ts';
import { PeerLostError, RingProtocolError, type CollectiveWhere } from './errors.ts';
import type { IncomingChunk } from './ring-allreduce.ts';
import type { DecodedChunk } from './wire.ts';

/** How long a rank waits for an abort from the left before blaming a vanished right neighbour. */
export const RIGHT_GONE_GRACE_MS = 250;

export abstract class PeerLifecycle {
  abstract readonly leftRank: number;
  abstract readonly stats: { messagesReceived: number; alignCopies: number };
  /** Takes payloads that arrive at an offset typed-array views cannot use (not 4-byte aligned). */
  private readonly scratch: Uint8Array;
  activeStep: number | null = null;
  lastStep = -1;
  protected readonly free: Uint8Array[] = [];
  protected roomWaiter: (() => void) | null = null;
  protected recvWaiter: { step: number; resolve: (m: IncomingChunk) => void; reject: (e: Error) => void } | null = null;
  protected error: Error | null = null;
  protected leftEnded = false;
  protected rightGone: PeerLostError | null = null;
  protected rightGoneAt = 0;
  protected closing = false;

  constructor(private readonly life: { rank: number; maxElements: number; where: () => CollectiveWhere; onFailure: (err: Error) => void }) {
    this.scratch = new Uint8Array(life.maxElements * 4);
  }

  /** Checks a received chunk against its codec and limits and hands it over 4-byte aligned. */
  protected incoming(m: DecodedChunk): IncomingChunk {
    const codec = codecByWireId(m.codec);
    if (!codec || m.payload.length !== m.elements * codec.bytesPerElement || m.elements > this.life.maxElements) {
      throw new RingProtocolError(
        `rank ${m.rank} sent a malformed message (codec ${m.codec}, ${m.elements} values, ${m.payload.length} bytes)`,
      );
    }
    let payload = m.payload;
    this.stats.messagesReceived++;
    if (payload.byteOffset % 4 !== 0) {
      if (payload.length > 0) this.stats.alignCopies++; // a sender that does not pad like wire.ts
      this.scratch.set(payload);
      payload = this.scratch.subarray(0, payload.length);
    }
    return { step: m.step, round: m.round, chunk: m.chunk, part: m.part, codec, elements: m.elements, payload };
  }

  /** Tells the right neighbour (best effort) that this ring is broken. */
  protected abstract sendAbort(err: Error): void;

  /** Throws if the ring cannot run another collective (called before each one). */
  checkUsable(): void {
    if (this.error) throw this.error;
    if (this.leftEnded) this.fail(this.leftEndedError());
    else if (this.rightGone) this.fail(this.rightGone);
    if (this.error) throw this.error;
  }

  /** True once a neighbour is gone or the peer failed. */
  get broken(): boolean {
    return this.error !== null || this.leftEnded || this.rightGone !== null;
  }

  /** A free send buffer, waiting for one (backpressure) or failing if the ring broke meanwhile. */
  protected async takeSendBuffer(): Promise<Uint8Array> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.rightGone) {
        const wait = this.rightGoneAt + RIGHT_GONE_GRACE_MS - performance.now();
        if (wait <= 0) {
          this.fail(this.rightGone);
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

  /** The right neighbour's stream went away: remember why and when, and let a waiting sender look. */
  protected markRightGone(rightRank: number, what: string): void {
    if (!this.rightGone) {
      this.rightGone = new PeerLostError(rightRank, this.life.where(), `its Pull stream from us ${what}`);
      this.rightGoneAt = performance.now();
    }
    this.wakeSender();
  }

  protected wakeSender(): void {
    const wake = this.roomWaiter;
    this.roomWaiter = null;
    wake?.();
  }

  protected leftEndedError(): PeerLostError {
    return new PeerLostError(this.leftRank, this.life.where(), 'it closed its stream to us (its ring was closed)');
  }

  protected fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    const w = this.recvWaiter;
    this.recvWaiter = null;
    w?.reject(err);
    this.wakeSender();
    if (this.closing) return;
    this.sendAbort(err);
    this.life.onFailure(err);
  }

  /** Header fields of the abort message: the rank the error names (else ours) and the current step. */
  protected abortFields(err: Error) {
    const named = (err as { rank?: unknown }).rank;
    const lostRank = typeof named === 'number' ? named : this.life.rank;
    const step = this.activeStep ?? this.lastStep;
    return {
      step: Math.max(step, 0), round: 0, chunk: 0, part: 0, rank: this.life.rank, codec: 0, elements: 0,
      abort: true, lostRank, reason: `${err.name}: ${err.message}`,
    };
  }
}
