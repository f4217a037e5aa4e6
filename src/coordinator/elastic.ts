/**
 * The coordinator's elastic steps (E1-E3 in coordinator.ts's header; docs/reliability.md) and the
 * re-form of a coordinator restart (R4-R5): the ring epoch, the round forming the next one (reform.ts
 * decides it), the plan that ends it. Apart from coordinator.ts, which owns the rest of the run and
 * lends what a round needs through `ElasticHost`.
 *   E1  lose(): a rank is lost while training (policy shrink | wait): it is dropped, a round starts.
 *   E2  join() / standbyReady(): a worker joins the running job as a standby; loaded, it enters at the
 *       next step boundary (a round with at_boundary).
 *   E3  report() -> plan: every member reported (ReformReport) -> ReformPlan{epoch, peers, target, source}.
 *   E4  leave(): a drained worker leaves: a round at the next step boundary, then it is dropped as in E1.
 *   R4  recover(): a restarted coordinator's round over the killed one's live workers, announced with
 *       Control.recover (they take this coordinator as theirs) instead of Control.reform.
 *   R5  its plan waits (RECOVER_REPORTS_MS at most) for the re-sent reports of the steps up to the
 *       target that the killed coordinator never recorded (every step not recorded: the live workers
 *       re-send all they hold). A loss's round waits the same way for steps of which no report came
 *       at all (lost in a NATS outage; the survivors re-send at the Reform), not for the lost rank's.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { ControlMessages } from '../control/bus.ts';
import type { CoordinatorPhase } from '../control/phases.ts';
import type { Membership } from './membership.ts';
import type { LiveWorker } from './recovery.ts';
import { ReformRound, type ReformLimits } from './reform.ts';

type M = ControlMessages;
type Plan = NonNullable<M['Control']['plan']>;

/** R5: how long a recovered round (or a loss's) waits for the re-sent reports of steps not recorded. */
export const RECOVER_REPORTS_MS = 3000;

/** What a round needs of the coordinator that runs it. */
export interface ElasticHost {
  readonly job: CompiledJob;
  readonly runId: string;
  readonly members: Membership;
  /** cluster.heartbeat_timeout_ms: a standby whose heartbeat is older is not taken in. */
  readonly timeoutMs: number;
  control(c: Omit<M['Control'], 'runId'>): void;
  log(line: string): void;
  phase(): CoordinatorPhase;
  setPhase(p: CoordinatorPhase): void;
  progressed(): void;
  fail(rank: number, reason: string): void;
  /** Every step up to this one is complete. */
  contiguous(): number;
  /** Steps up to `step` of which no report came at all. */
  unreported(step: number): number[];
  lastComplete(): number;
  totalSteps(): number;
  /** The evaluation after `step` was decided (and recorded). */
  evaluated(step: number): boolean;
  /** A plan was made: steps through `targetStep` count as complete, the ranks are the plan's. */
  planned(targetStep: number): void;
}

export class ElasticRounds {
  /** The ring epoch training runs in (the latest plan's). */
  epoch = 0;
  private round?: ReformRound;
  private sentMs = 0;
  /** The latest plan, sent again to a member that missed it. */
  private lastPlan?: Plan;
  /** R4-R5: set until the plan of a restarted coordinator's first round. */
  private recovering = false;
  /** When the current round could first have been decided but for missing step reports (R5). */
  private decidableMs?: number;
  /** The run is stopping (SIGTERM to the coordinator): a round no longer waits for replacements. */
  stopping = false;

  constructor(private readonly h: ElasticHost, readonly limits: ReformLimits) {}

  /** A round is forming the next epoch. */
  get inRound(): boolean {
    return this.round !== undefined;
  }

  /** The epoch the round in progress forms (undefined: none). */
  get roundEpoch(): number | undefined {
    return this.round?.epoch;
  }

  /** A round after a loss (or a restart): the step and any evaluation in flight are abandoned. */
  get abandoning(): boolean {
    return !!this.round && !this.round.atBoundary;
  }

  /** E2: a standby sent Ready. In the ring already (it missed the plan that took it in): the plan again. */
  standbyReady(workerId: string): void {
    if (!this.h.members.isStandby(workerId)) {
      if (this.lastPlan && this.lastPlan.peers.some((p) => p.workerId === workerId)) this.h.control({ plan: this.lastPlan });
      return;
    }
    if (this.h.members.standbyReady(workerId)) this.admit();
  }

  /** E2: loaded standby workers enter at the next step boundary (training) or with the round in progress. */
  admit(): void {
    if (this.h.phase() === 'reforming') return this.tryPlan();
    const ready = this.h.members.readyStandby(this.h.timeoutMs);
    if (this.h.phase() !== 'training' || this.round || !ready.length || this.h.members.worldSize >= this.limits.maxWorkers) return;
    this.start(`worker${ready.length > 1 ? 's' : ''} ${ready.map((w) => w.workerId).join(', ')} join${ready.length > 1 ? '' : 's'}`, [], true);
  }

  /**
   * E1: a rank is gone. Shrink / wait while training or re-forming: drop it and re-form; otherwise
   * (policy fail, or while loading or finishing) the run fails as step 9 says.
   */
  lose(rank: number, reason: string): void {
    const phase = this.h.phase();
    const elastic = this.limits.onLoss !== 'fail' && (phase === 'training' || phase === 'reforming');
    const workerId = this.h.members.byRank(rank)?.workerId;
    if (!elastic) return this.h.fail(rank, reason);
    if (workerId === undefined) return; // dropped already (another survivor's report of the same loss)
    this.h.log(`[coordinator] rank ${rank} (${workerId}) lost after step ${this.h.lastComplete()}: ${reason}; elastic.on_loss ${this.limits.onLoss}: re-forming the ring`);
    this.h.members.drop(rank);
    this.start(`rank ${rank} (${workerId}) lost: ${reason}`, [workerId, ...(this.round?.dropped ?? [])], false);
  }

  /**
   * E4: worker `workerId` (rank `rank`) leaves the run on SIGTERM. A request (`left` false) while
   * training starts a round at the next step boundary, as a join does: the leaver stops there with the
   * others and says so; during a round it leaves from that round. `left`: it has stopped and exits
   * now: dropped as a loss (E1), so the ring re-forms without waiting for a heartbeat timeout. False
   * when the policy cannot go on without it (fail; loading, finishing): the caller stops the run.
   */
  leave(rank: number, workerId: string, reason: string, left: boolean): boolean {
    const phase = this.h.phase();
    if (this.limits.onLoss === 'fail' || (phase !== 'training' && phase !== 'reforming')) return false;
    if (left) {
      this.lose(rank, `left the run (${reason})`);
      return true;
    }
    if (this.round) return true; // the leaver leaves from this round (at its boundary, or when it would report)
    this.h.log(`[coordinator] rank ${rank} (${workerId}) leaves the run (${reason}): every rank stops after the next step, then the ring re-forms without it`);
    this.start(`rank ${rank} (${workerId}) leaves: ${reason}`, [], true);
    return true;
  }

  /**
   * R4: a round over the killed coordinator's live workers (members already, at their ranks), for an
   * epoch above any they know; `worldBefore` is the killed session's world (`wait` waits to get back to it).
   */
  recover(live: readonly LiveWorker[], sessionEpoch: number, worldBefore: number, lost: string[]): void {
    const next = Math.max(sessionEpoch, ...live.map((w) => Math.max(w.epoch, w.reformEpoch))) + 1;
    this.epoch = Math.max(...live.map((w) => w.epoch)); // the epoch their re-sent reports carry
    this.recovering = true;
    this.decidableMs = undefined;
    this.round = new ReformRound(next, `coordinator restarted (run ${this.h.runId})`, live.map((w) => w.workerId), worldBefore, false, lost);
    this.h.setPhase('reforming');
    this.h.progressed();
    this.send();
  }

  /** E3: a survivor abandoned its ring and built the next one. */
  report(r: M['ReformReport']): void {
    // A member that missed the plan re-sends its report: send the plan again.
    if (!this.round && r.epoch === this.epoch && this.lastPlan) return this.h.control({ plan: this.lastPlan });
    if (!this.round?.add(r)) return;
    this.h.members.alsoAliveWorker(r.workerId);
    this.h.members.setRingAddress(r.workerId, r.ringAddress);
    this.tryPlan();
  }

  /** The watchdog's turn: a round's Control again every second (a lost one costs a second, not the run), or a standby's entry. */
  tick(): void {
    if (!this.round) return this.admit();
    if (performance.now() - this.sentMs > 1000) this.send();
    this.tryPlan();
  }

  /** R5: a step report came in; it may be the last one the round's plan waits for. */
  stepRecorded(): void {
    if (this.round) this.tryPlan();
  }

  /** E1/E2: a new round for epoch + 1 (a loss during a round starts the next one, without the lost). */
  private start(reason: string, dropped: string[], atBoundary: boolean): void {
    const epoch = (this.round?.epoch ?? this.epoch) + 1;
    const worldBefore = this.round?.worldBefore ?? this.h.members.worldSize;
    this.round = new ReformRound(epoch, reason, this.h.members.activeWorkers(), worldBefore, atBoundary && !this.round?.dropped.length, dropped);
    this.decidableMs = undefined;
    this.h.setPhase('reforming');
    this.h.progressed();
    this.send();
  }

  private send(): void {
    const r = this.round!;
    this.sentMs = performance.now();
    if (this.recovering) this.h.control({ recover: { epoch: r.epoch, reason: r.reason, dropped: [...r.dropped] } }); // R4
    else this.h.control({ reform: { epoch: r.epoch, reason: r.reason, dropped: [...r.dropped], atBoundary: r.atBoundary } });
  }

  /** E3: the round's decision, once it can be made. */
  private tryPlan(): void {
    const round = this.round;
    if (!round || this.h.phase() !== 'reforming') return;
    // Stopping: the ranks go on with whoever is there, for the one step the stop needs.
    const d = round.decide(this.h.members.readyStandby(this.h.timeoutMs), this.stopping ? { ...this.limits, waitTimeoutMs: 0 } : this.limits);
    if (d.kind === 'wait') return;
    if (d.kind === 'fail') return this.h.fail(-1, d.reason);
    // R5: steps not recorded come from the workers' re-sent reports (sent with their ReformReports, on
    // another subject): wait briefly so the history has no holes. A restart waits for every step (all
    // live workers re-send what was never acknowledged); a loss's round for the steps nobody's report
    // reached (a lost rank's own reports never come: its steps are recorded from the survivors').
    const missing = this.recovering ? this.h.contiguous() < d.targetStep : !round.atBoundary && this.h.unreported(d.targetStep).length > 0;
    if (missing) {
      const since = (this.decidableMs ??= performance.now());
      if (performance.now() - since < RECOVER_REPORTS_MS) return;
      this.h.log(`[coordinator] ${this.recovering ? 'recovering' : `re-form ${round.epoch}`}: the re-sent reports of steps up to ${d.targetStep} did not all come in ${RECOVER_REPORTS_MS} ms; ` +
        'recording those that did (partial totals)');
    }
    if (this.recovering) this.h.log(`[coordinator] recovered run ${this.h.runId}: every step through ${d.targetStep} applied${this.h.contiguous() >= d.targetStep ? ' and recorded' : ''}`);
    this.recovering = false;
    this.decidableMs = undefined;
    this.round = undefined;
    this.epoch = round.epoch;
    this.h.members.reRank(d.peers.map((p) => p.workerId));
    // An evaluation due after the target step whose decision never went out was abandoned: run it again.
    const every = this.h.job.eval.everyNSteps;
    const evaluate = every > 0 && d.targetStep > 0 && d.targetStep % every === 0 && d.targetStep < this.h.totalSteps() && !this.h.evaluated(d.targetStep);
    this.lastPlan = { epoch: round.epoch, peers: d.peers, targetStep: d.targetStep, sourceRank: d.sourceRank, ...(evaluate ? { evaluate } : {}) };
    this.h.planned(d.targetStep);
    this.h.setPhase('training');
    this.h.progressed();
    this.h.control({ plan: this.lastPlan });
    this.h.log(`[coordinator] ring epoch ${round.epoch}: ${d.peers.length} workers from step ${d.targetStep} (state from rank ${d.sourceRank})` +
      `${d.joined.length ? `; joined: ${d.joined.join(', ')}` : ''}: ${d.peers.map((p) => `rank ${p.rank} = ${p.workerId} @ ${p.ringAddress}`).join(', ')}`);
  }
}
