/**
 * At-least-once delivery of a worker's reports over core NATS (which drops what arrives while a
 * subscriber is disconnected): each report is sent at once and again after `intervalMs`, doubling
 * up to `maxIntervalMs` (an eval report may legitimately wait long for the slowest rank), until the
 * coordinator's answer acknowledges it. The coordinator treats every report as idempotent (by run,
 * rank and step), so a re-send never counts twice.
 *   step:<n>   acknowledged by Control.alive.step >= n: the coordinator sends the highest step such
 *              that it and every step before it are recorded (their metrics.jsonl lines written), never
 *              a step above a hole, so a report it missed is kept and re-sent (also to a coordinator
 *              that takes over: docs/reliability.md)
 *   ckpt:<n>   acknowledged by Control.alive.checkpoint_step >= n
 *   ready      acknowledged by Control.start
 *   eval:<n>   acknowledged by the EvalDecision of step n
 *   done       acknowledged by Control.shutdown
 */
export class Resender {
  private pending = new Map<string, { send: () => void; lastSent: number; wait: number; step?: number }>();
  resent = 0;

  constructor(readonly intervalMs: number, readonly maxIntervalMs = 30_000) {}

  send(key: string, send: () => void, step?: number, now = performance.now()): void {
    send();
    this.pending.set(key, { send, lastSent: now, wait: this.intervalMs, step });
  }

  ack(key: string): void {
    this.pending.delete(key);
  }

  /** Acknowledges every `<kind>:<n>` with n <= step. */
  ackThrough(kind: string, step: number): void {
    for (const [key, p] of this.pending) if (key.startsWith(`${kind}:`) && p.step !== undefined && p.step <= step) this.pending.delete(key);
  }

  /** Forgets every `<kind>:<n>` (reports that can no longer be answered: an abandoned epoch's evaluations). */
  dropKind(kind: string): void {
    for (const key of [...this.pending.keys()]) if (key.startsWith(`${kind}:`)) this.pending.delete(key);
  }

  get size(): number {
    return this.pending.size;
  }

  /**
   * Sends everything pending now and restarts each backoff (a restarted coordinator took over: what
   * the dead one never acknowledged goes to it at once, not after a backoff grown through the silence).
   */
  resendAll(now = performance.now()): void {
    for (const p of this.pending.values()) {
      p.lastSent = now;
      p.wait = this.intervalMs;
      this.resent += 1;
      p.send();
    }
  }

  /** Sends again whatever waited longer than the interval; call it from a timer. */
  tick(now = performance.now()): void {
    for (const p of this.pending.values()) {
      if (now - p.lastSent < p.wait) continue;
      p.lastSent = now;
      p.wait = Math.min(p.wait * 2, this.maxIntervalMs);
      this.resent += 1;
      p.send();
    }
  }
}
