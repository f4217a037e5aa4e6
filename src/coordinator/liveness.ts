/**
 * Liveness: the watchdog's verdict on each tick. While a run is loading, training or finishing, a
 * rank whose last heartbeat (or step report) is older than the timeout is declared lost; while loading
 * or training the coordinator announces itself (Control.CoordinatorAlive) so workers notice when it
 * falls silent. Heartbeats alone judge liveness: loading a large dataset has no deadline, and a rank
 * busy in one long kernel is alive (its heartbeat thread says so, with what it is doing); a rank that
 * is alive but makes no progress is the progress watchdog's (cluster.progress_timeout_ms) to judge.
 */
import type { CoordinatorPhase } from '../control/phases.ts';
import type { Membership } from './membership.ts';

export interface LivenessVerdict {
  /** Workers whose heartbeats are current. */
  alive: number;
  /** Send Control.alive this tick. */
  announce: boolean;
  /** The rank to declare lost, with the age of its last sign of life. */
  lost?: { rank: number; ageMs: number };
}

export class Liveness {
  constructor(private readonly members: Membership, readonly timeoutMs: number) {}

  check(phase: CoordinatorPhase): LivenessVerdict {
    const alive = this.members.alive(this.timeoutMs);
    const announce = phase === 'loading' || phase === 'training' || phase === 'reforming';
    const watched = announce || phase === 'finishing';
    return { alive, announce, lost: watched ? this.members.late(this.timeoutMs) : undefined };
  }

  describe(lost: { ageMs: number }): string {
    // Heartbeats come from a thread of their own (worker/heartbeat-thread.ts): compute cannot delay them.
    return `no heartbeat for ${Math.round(lost.ageMs)} ms (timeout ${this.timeoutMs} ms): the process is gone or cannot reach NATS`;
  }
}
