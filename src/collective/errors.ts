/**
 * Typed errors of the ring all-reduce. Each names the rank at fault (`rank`), the collective
 * (`step`) and, when known, the `round`, so a hang or a crash can be traced to one worker.
 * After any of these the ring is broken: close it and let the coordinator re-form a ring.
 */
import { RingtuneError } from '../errors.ts';

export interface CollectiveWhere {
  /** Rank that raised the error (the observer). */
  readonly observer: number;
  readonly step: number | null;
  /** Round the observer was waiting on (0..2N-3), or null when idle / unknown. */
  readonly round: number | null;
}

function where(w: CollectiveWhere): string {
  const step = w.step === null ? 'between collectives' : `in all-reduce step ${w.step}`;
  const round = w.round === null ? '' : ` round ${w.round}`;
  return `${step}${round} (seen by rank ${w.observer})`;
}

/** A peer's connection closed or failed: the process died, was killed, or closed its ring. */
export class PeerLostError extends RingtuneError {
  override readonly name: string = 'PeerLostError';
  readonly observer: number;
  readonly step: number | null;
  readonly round: number | null;
  constructor(
    readonly rank: number,
    w: CollectiveWhere,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `rank ${rank} was lost ${where(w)}: ${detail}. The ring is broken; close it and re-form the ring ` +
        `without rank ${rank} (or after it is replaced).`,
      options,
    );
    this.observer = w.observer;
    this.step = w.step;
    this.round = w.round;
  }
}

/** A collective did not finish within its timeoutMs. `rank` is the rank that stopped answering. */
export class CollectiveTimeoutError extends RingtuneError {
  override readonly name: string = 'CollectiveTimeoutError';
  readonly observer: number;
  readonly step: number | null;
  readonly round: number | null;
  constructor(
    readonly rank: number,
    readonly timeoutMs: number,
    w: CollectiveWhere,
    detail: string,
  ) {
    super(
      `all-reduce timed out after ${timeoutMs} ms ${where(w)} waiting on rank ${rank}: ${detail}. ` +
        `Check that rank ${rank} is alive and not stuck; the ring is broken and must be re-formed.`,
    );
    this.observer = w.observer;
    this.step = w.step;
    this.round = w.round;
  }
}

/** connect() failed: a neighbour refused us (token, job, rank) or did not show up in time. */
export class RingConnectError extends RingtuneError {
  override readonly name: string = 'RingConnectError';
  constructor(
    readonly rank: number,
    readonly address: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`ring connection with rank ${rank} (${address}) failed: ${detail}`, options);
  }
}

/** A message arrived out of the ring's fixed order, or a call broke the API contract. */
export class RingProtocolError extends RingtuneError {
  override readonly name: string = 'RingProtocolError';
}

/** The ring was closed (by this process) while an operation was pending or after close(). */
export class RingClosedError extends RingtuneError {
  override readonly name: string = 'RingClosedError';
}
