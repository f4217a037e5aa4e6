/**
 * At-least-once delivery of a worker's reports over core NATS (which drops what arrives while a
 * subscriber is disconnected): each report is sent at once and again every `intervalMs` until the
 * coordinator's answer acknowledges it. The coordinator treats every report as idempotent (by run,
 * rank and step), so a re-send never counts twice.
 *   step:<n>   acknowledged by Control.alive.step >= n (contiguous)
 *   ckpt:<n>   acknowledged by Control.alive.checkpoint_step >= n
 *   ready      acknowledged by Control.start
 *   eval:<n>   acknowledged by the EvalDecision of step n
 *   done       acknowledged by Control.shutdown
 */
export class Resender {
  private pending = new Map<string, { send: () => void; lastSent: number; step?: number }>();
  resent = 0;

  constructor(readonly intervalMs: number) {}

  send(key: string, send: () => void, step?: number): void {
    send();
    this.pending.set(key, { send, lastSent: performance.now(), step });
  }

  ack(key: string): void {
    this.pending.delete(key);
  }

  /** Acknowledges every `<kind>:<n>` with n <= step. */
  ackThrough(kind: string, step: number): void {
    for (const [key, p] of this.pending) if (key.startsWith(`${kind}:`) && p.step !== undefined && p.step <= step) this.pending.delete(key);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Sends again whatever waited longer than the interval; call it from a timer. */
  tick(now = performance.now()): void {
    for (const p of this.pending.values()) {
      if (now - p.lastSent < this.intervalMs) continue;
      p.lastSent = now;
      this.resent += 1;
      p.send();
    }
  }
}
