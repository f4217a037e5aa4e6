/**
 * One re-form of the ring (elastic training, docs/reliability.md): which workers make up epoch e+1,
 * at which step it resumes, and who hands the state over.
 *
 * The commit rule is "the most advanced survivor". A ring can break while some ranks finished step s's
 * final all-gather (and applied s) and others did not; no rank can be two steps ahead of another (step
 * s+1's all-reduce needs everyone's step-s gradients). So the survivors report applied steps of at
 * most two values, s-1 and s; target = s, the source is the first survivor (in new rank order) at s, and
 * the broadcast of its parameters and optimizer state brings the others to s. Step s is applied exactly
 * once, with its full N-rank update; the step in flight (s+1) is abandoned everywhere and re-run by the
 * new world.
 */
import type { ControlMessages } from '../control/bus.ts';

type Report = ControlMessages['ReformReport'];

export type ElasticPolicy = 'shrink' | 'wait' | 'fail';

export interface ReformLimits {
  onLoss: ElasticPolicy;
  minWorkers: number;
  maxWorkers: number;
  waitTimeoutMs: number;
}

export interface StandbyWorker {
  workerId: string;
  ringAddress: string;
}

export type Peer = { rank: number; workerId: string; ringAddress: string };

/** What the round decided: wait longer, fail (the reason names the policy), or the ring of the new epoch. */
export type ReformDecision =
  | { kind: 'wait' }
  | { kind: 'fail'; reason: string }
  | { kind: 'plan'; peers: Peer[]; targetStep: number; sourceRank: number; joined: string[] };

export class ReformRound {
  private readonly reports = new Map<string, Report>();
  readonly startedMs: number;

  /**
   * @param survivors the members expected to report, in their old rank order (the new ranks keep it)
   * @param worldBefore the world size before the loss (or join): `wait` waits to get back to it
   * @param atBoundary a join (every survivor stopped after the same step), not a loss
   */
  constructor(
    readonly epoch: number,
    readonly reason: string,
    readonly survivors: readonly string[],
    readonly worldBefore: number,
    readonly atBoundary: boolean,
    readonly dropped: readonly string[],
    now = performance.now(),
  ) {
    this.startedMs = now;
  }

  /** Records a survivor's report; false for a worker this round does not expect. */
  add(r: Report): boolean {
    if (r.epoch !== this.epoch || !this.survivors.includes(r.workerId)) return false;
    this.reports.set(r.workerId, r);
    return true;
  }

  get missing(): string[] {
    return this.survivors.filter((w) => !this.reports.has(w));
  }

  /**
   * Decides once every survivor reported. `standby`: loaded joiners, in join order. shrink: the
   * survivors (plus any standby, up to max_workers) if at least min_workers. wait: as shrink once the
   * world is back to its size before the loss or wait_timeout_ms passed. fail: never re-forms after a
   * loss (the coordinator does not start a round then); a join still re-forms at a boundary.
   */
  decide(standby: readonly StandbyWorker[], limits: ReformLimits, now = performance.now()): ReformDecision {
    if (this.missing.length) return { kind: 'wait' };
    const room = Math.max(0, limits.maxWorkers - this.survivors.length);
    const joiners = standby.slice(0, room);
    const world = this.survivors.length + joiners.length;
    const waited = now - this.startedMs;
    if (!this.atBoundary && limits.onLoss === 'wait' && world < this.worldBefore && waited < limits.waitTimeoutMs) return { kind: 'wait' };
    if (world < limits.minWorkers || world === 0) {
      const why = limits.onLoss === 'wait' ? `no replacement joined within elastic.wait_timeout_ms ${limits.waitTimeoutMs} and ` : '';
      return { kind: 'fail', reason: `elastic.on_loss ${limits.onLoss}: ${why}${world} worker${world === 1 ? '' : 's'} left, fewer than elastic.min_workers ${limits.minWorkers} (${this.reason})` };
    }
    const applied = this.survivors.map((w) => this.reports.get(w)!.appliedStep);
    const targetStep = Math.max(...applied);
    const behind = this.survivors.filter((_, i) => applied[i]! < targetStep - 1);
    if (behind.length) {
      // Impossible under the ring's rule (one step apart at most): refuse rather than guess.
      return { kind: 'fail', reason: `re-form ${this.epoch}: survivors ${behind.join(', ')} are more than one step behind step ${targetStep}` };
    }
    const peers: Peer[] = [
      ...this.survivors.map((w) => ({ workerId: w, ringAddress: this.reports.get(w)!.ringAddress })),
      ...joiners.map((j) => ({ workerId: j.workerId, ringAddress: j.ringAddress })),
    ].map((p, rank) => ({ rank, ...p }));
    return { kind: 'plan', peers, targetStep, sourceRank: applied.indexOf(targetStep), joined: joiners.map((j) => j.workerId) };
  }
}
