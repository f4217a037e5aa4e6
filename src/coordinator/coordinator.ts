/**
 * The coordinator: one per job. The protocol, as it runs here (subjects in control/subjects.ts,
 * payloads in proto/ringtune/v1/control.proto):
 *
 *  1. Compile the job, connect to NATS, subscribe to join / ready / heartbeat / step / eval /
 *     checkpoint / done / failed / status. With --resume, find the latest checkpoint.
 *  2. Workers send Join (every second until assigned) with their ring address, backend, rank hint.
 *  3. When cluster.workers have joined (within join_timeout_ms): ranks by rank hint, then join order;
 *     each worker gets an Assignment: run id, rank, world size, every peer's ring address in ring
 *     order, the compiled job, the checkpoint to resume from and the ring's shared token.
 *  4. Workers load model and data and connect the ring, then send Ready. There is no deadline here:
 *     a large dataset may take long to tokenise; liveness is judged by heartbeats alone (step 9).
 *  5. All Ready -> Control.Start{start_step}.
 *  6. Every step every rank sends a StepReport. When all ranks reported step s, s is complete: its
 *     global loss goes to metrics.jsonl and Prometheus; on hash steps all parameter hashes must
 *     match, or the run stops naming the ranks that differ.
 *  7. At step 0 (fresh runs), every eval.every_n_steps and at the end, each rank sends the
 *     EvalReport of its eval shard; the merged result is recorded, early stopping is decided, and
 *     Control.EvalDecision tells every rank to go on or stop.
 *  8. Rank 0 writes checkpoints (atomically) and reports them; the coordinator records the step.
 *  9. A heartbeat older than heartbeat_timeout_ms, or a Failed message, stops the run: Control.Abort
 *     to all, and the coordinator fails with an error naming the rank and the last completed step.
 *     The coordinator in turn sends Control.CoordinatorAlive; workers stop if it falls silent.
 * 10. Done from every rank: write eval_report.json and report.html, Control.Shutdown, exit 0.
 *
 * Elastic (job `elastic:`, docs/reliability.md; reform.ts decides each round):
 * E1. A rank is lost (step 9's heartbeat verdict, or a survivor's Failed{survivor, lost_rank}) while
 *     training, and elastic.on_loss is shrink or wait: it is dropped and Control.Reform{epoch e+1}
 *     goes to all (re-sent until the plan). Under fail, step 9 as before.
 * E2. A Join while training below elastic.max_workers: Assignment{standby}; the worker loads and sends
 *     Ready{standby}; then Control.Reform{e+1, at_boundary}: the ranks vote in the next all-reduce and
 *     all stop after the same step.
 * E3. Every surviving member abandons its ring, builds the ring of e+1 and sends ReformReport{applied
 *     step, ring address}. When all did (wait: and the world is whole again or wait_timeout_ms passed),
 *     Control.ReformPlan{e+1, peers, target = max applied step, source}: survivors keep their order,
 *     standby joiners follow; the source broadcasts its state on the new ring; training goes on from
 *     target + 1. Steps up to target count as complete; reports of another epoch are ignored.
 *     Fewer than elastic.min_workers: the run fails naming the policy.
 *
 * Parts: membership.ts (joins, ranks, heartbeats), liveness.ts (the watchdog's verdict),
 * step-book.ts (step completion), eval-book.ts (eval merge), src/run/record.ts (history, early
 * stopping, reports). `Coordinator` holds one handler per protocol step above and speaks through an
 * `Outbox`, so it runs (and is tested) without NATS; `runCoordinator` wires it to the bus, in order.
 */
import { randomBytes } from 'node:crypto';
import type { CompiledJob } from '../config/compile.ts';
import { ControlAuth, type RejectReason } from '../control/auth.ts';
import { Bus, type BusOptions, type ControlMessages, type MessageMeta } from '../control/bus.ts';
import type { CoordinatorPhase } from '../control/phases.ts';
import { subjects } from '../control/subjects.ts';
import { RingtuneError } from '../errors.ts';
import { classificationReport } from '../eval/classification-report.ts';
import { parseEvalState, type EvalResult } from '../eval/eval-state.ts';
import { finalModelDir } from '../run/outputs.ts';
import { RunRecord } from '../run/record.ts';
import { claimCheckpointDir, newRunId } from '../run/checkpoint-dir.ts';
import { EvalBook } from './eval-book.ts';
import { Liveness } from './liveness.ts';
import { Membership } from './membership.ts';
import { ReformRound, type ReformLimits } from './reform.ts';
import { describeHashGroups, StepBook, type CompletedStep } from './step-book.ts';
import { stringifyRecord } from '../run/record-json.ts';
import { continueRecord, findLiveWorkers, type LiveWorker, type RecoveredRun } from './recovery.ts';
import { SessionFile, type CoordinatorSession } from './session-file.ts';

export type { CoordinatorPhase } from '../control/phases.ts';

type M = ControlMessages;

export class RunFailedError extends RingtuneError {
  override readonly name: string = 'RunFailedError';
}

export interface CoordinatorEvents {
  phase?: (p: CoordinatorPhase) => void;
  workersAlive?: (n: number, worldSize: number) => void;
  step?: (r: { step: number; loss: number; lr: number; gradNorm: number; tokens: number; samples: number; tokensPerSecond: number }) => void;
  hashCheck?: (ok: boolean) => void;
  eval?: (step: number, r: EvalResult) => void;
  checkpoint?: (step: number) => void;
  /** A control message was dropped (bad MAC, replay, malformed, or not this run's). */
  rejected?: (reason: RejectReason) => void;
  /** The run is set up: its live status (read by metrics at each scrape) and its NATS connection. */
  started?: (run: { status: () => M['StatusReply']; nats: Bus['nc'] }) => void;
}

export interface CoordinatorOptions {
  job: CompiledJob;
  bus: BusOptions;
  /** The job's shared secret (auth.ts loadJobSecret): authenticates every control message. */
  secret: string;
  resume?: boolean;
  /** Start over even if the checkpoint directory holds another run's checkpoints (they are removed). */
  overwrite?: boolean;
  /** Aborted (SIGTERM): every rank stops after the same step, rank 0 checkpoints, the run ends resumable. */
  stop?: AbortSignal;
  /**
   * --resume-if-present: take over the run of a killed coordinator of this job whose workers still
   * train (recovery.ts), and keep this session's file for the next restart (session-file.ts).
   */
  recoverIfLive?: boolean;
  log: (line: string) => void;
  events?: CoordinatorEvents;
}

export interface RunSummary {
  runId: string;
  steps: number;
  baseEval?: EvalResult;
  finalEval?: EvalResult;
  stoppedEarly: boolean;
  finalModelDir: string;
  /** Stopped on request (SIGTERM) after this step, before the end; rank 0's checkpoint if one was written. */
  stoppedBy?: { step: number; checkpoint?: string };
}

/** How the coordinator speaks: Control to every rank, an Assignment to one worker. */
export interface Outbox {
  control(c: Omit<M['Control'], 'runId'>): void;
  assign(workerId: string, a: M['Assignment']): void;
}

export interface CoordinatorInit {
  job: CompiledJob;
  runId: string;
  record: RunRecord;
  outbox: Outbox;
  log: (line: string) => void;
  events?: CoordinatorEvents;
  /** The checkpoint a resumed run continues from. */
  resumeFrom?: string;
  /** Counts a message that authenticated but does not belong to this run (wrong rank or sender, out-of-range step). */
  refuse?: (detail: string) => void;
  /** How long the NATS connection has been down (0: up); liveness is not judged during an outage. */
  natsDownMs?: () => number;
  /** Keeps what a restarted coordinator needs (session-file.ts), when training starts and at every re-form. */
  session?: (s: CoordinatorSession) => void;
}

/** R5: how long a recovered round waits for the re-sent reports of steps the killed coordinator missed. */
const RECOVER_REPORTS_MS = 3000;

/** The job as workers get it: NATS credentials stay with whoever holds them (each process has its own). */
function withoutCredentials(job: CompiledJob): CompiledJob {
  const { token: _t, user: _u, password: _p, ...nats } = job.cluster.nats as CompiledJob['cluster']['nats'] & { token?: string; user?: string; password?: string };
  return { ...job, cluster: { ...job.cluster, nats } };
}

export class Coordinator {
  readonly members: Membership;
  readonly finished: Promise<RunSummary>;
  private readonly liveness: Liveness;
  private readonly steps = new StepBook();
  private evals = new EvalBook();
  /** Elastic: the ring epoch training runs in (ReformPlan), the round forming the next one, the limits. */
  private epoch = 0;
  private reform?: ReformRound;
  private reformSentMs = 0;
  /** The latest ReformPlan, sent again to a member that missed it. */
  private lastPlan?: NonNullable<M['Control']['plan']>;
  private readonly limits: ReformLimits;
  /** R4-R5: this coordinator is taking over a killed one's run; set until the plan of its first round. */
  private recovering?: { decidableMs?: number };
  private readonly ready = new Set<number>();
  private readonly done = new Set<number>();
  private phase: CoordinatorPhase = 'waiting-for-workers';
  private lastComplete = 0;
  private totalSteps = 0;
  private lastLoss = NaN;
  private lastCheckpointStep = 0;
  private stoppedEarly = false;
  private sizes = { train: 0, eval: 0 };
  private stoppedAt?: { step: number; checkpoint?: string };
  private labels: readonly string[] = [];
  private finalModelDir: string;
  private lastProgress = performance.now();
  private readonly decisions = new Map<number, NonNullable<M['Control']['evalDecision']>>();
  private readonly assignments = new Map<string, M['Assignment']>();
  private settle!: { resolve: (s: RunSummary) => void; reject: (e: Error) => void };

  constructor(private readonly o: CoordinatorInit) {
    this.members = new Membership(o.job.cluster.workers);
    this.liveness = new Liveness(this.members, o.job.cluster.heartbeatTimeoutMs);
    this.finalModelDir = finalModelDir(o.job.outputDir);
    // --workers may override cluster.workers after compile: the limits always include it.
    const { elastic, cluster } = o.job;
    this.limits = {
      onLoss: elastic.onLoss, waitTimeoutMs: elastic.waitTimeoutMs,
      minWorkers: Math.min(elastic.minWorkers, cluster.workers), maxWorkers: Math.max(elastic.maxWorkers, cluster.workers),
    };
    this.finished = new Promise<RunSummary>((resolve, reject) => (this.settle = { resolve, reject }));
    this.finished.catch(() => {}); // the owner awaits it; a failure before that must not be "unhandled"
  }

  get currentPhase(): CoordinatorPhase {
    return this.phase;
  }

  // 2-3. joins and assignment
  onJoin(j: M['Join'], sender?: string): void {
    if (sender !== undefined && sender !== j.workerId) return this.refuse(`Join for ${j.workerId} sent by ${sender}`);
    if (this.phase !== 'waiting-for-workers') {
      // A member still joining lost its Assignment: send it again. A worker beyond the world size is
      // told so (it exits non-zero) instead of waiting forever.
      const mine = this.assignments.get(j.workerId);
      if (mine) {
        if (this.phase === 'loading' || mine.standby) this.o.outbox.assign(j.workerId, mine);
      } else if ((this.phase === 'loading' || this.phase === 'training' || this.phase === 'reforming') && this.members.size < this.limits.maxWorkers) {
        this.joinRunning(j); // E2
      } else {
        this.o.outbox.assign(j.workerId, {
          runId: this.o.runId, workerId: j.workerId, rank: 0, worldSize: 0, peers: [], compiledJobJson: '', resumeFrom: '',
          refused: `run ${this.o.runId} already has its ${this.members.worldSize} workers (phase ${this.phase}; elastic.max_workers ${this.limits.maxWorkers})`,
        });
      }
      return;
    }
    this.members.join(j);
    if (!this.members.full()) return;
    this.setPhase('loading');
    const { job, runId } = this.o;
    const peers = this.members.assignRanks();
    for (const p of peers) {
      const a: M['Assignment'] = {
        runId, workerId: p.workerId, rank: p.rank, worldSize: peers.length, peers, compiledJobJson: JSON.stringify(withoutCredentials(job)),
        resumeFrom: this.o.resumeFrom ?? '',
      };
      this.assignments.set(p.workerId, a);
      this.o.outbox.assign(p.workerId, a);
    }
    this.o.log(`[coordinator] run ${runId}: ${peers.map((p) => `rank ${p.rank} = ${p.workerId} @ ${p.ringAddress}`).join(', ')}`);
  }

  /** E2: a worker joins the running job as a standby; it enters the ring at the next re-form. */
  private joinRunning(j: M['Join']): void {
    this.members.addStandby(j);
    const a: M['Assignment'] = {
      runId: this.o.runId, workerId: j.workerId, rank: 0, worldSize: 0, peers: [], compiledJobJson: JSON.stringify(withoutCredentials(this.o.job)),
      resumeFrom: this.o.resumeFrom ?? '', epoch: this.epoch, standby: true,
    };
    this.assignments.set(j.workerId, a);
    this.o.outbox.assign(j.workerId, a);
    this.o.log(`[coordinator] ${j.workerId} @ ${j.ringAddress} joins the running job: loading, enters the ring at the next re-form`);
  }

  /** The join deadline passed. */
  joinTimedOut(): void {
    if (this.phase !== 'waiting-for-workers') return;
    this.fail(-1, `only ${this.members.size} of ${this.o.job.cluster.workers} workers joined within ${this.o.job.cluster.joinTimeoutMs} ms`);
  }

  // 4-5. ready -> start
  onReady(r: M['Ready'], sender?: string): void {
    if (r.runId !== this.o.runId) return;
    if (r.standby) return this.onStandbyReady(r, sender);
    if (!this.fromRank(r.rank, sender, 'Ready')) return;
    // A rank re-sends Ready until it hears Start: it missed it.
    if (this.phase === 'training' && this.ready.has(r.rank)) return this.o.outbox.control({ start: { startStep: this.steps.contiguous } });
    if (this.phase !== 'loading') return;
    this.ready.add(r.rank);
    this.totalSteps = r.totalSteps;
    if (r.rank === 0) {
      this.sizes = { train: r.trainExamples, eval: r.evalExamples };
      this.labels = r.labels ?? [];
    }
    if (this.ready.size < this.members.worldSize) return;
    this.lastComplete = r.startStep;
    this.steps.startAt(r.startStep);
    this.progressed();
    this.setPhase('training');
    this.o.outbox.control({ start: { startStep: r.startStep } });
    this.saveSession();
  }

  /**
   * R4: takes over the run a killed coordinator left (recovery.ts R1-R3 found it and its live workers):
   * they become the members at their ranks, their re-sent reports of ring epoch e are accepted, and a
   * re-form round for an epoch above any they know starts with Control.recover instead of Control.reform.
   */
  recover(r: RecoveredRun): void {
    const { session, live } = r;
    const next = Math.max(session.epoch, ...live.map((w) => Math.max(w.epoch, w.reformEpoch))) + 1;
    this.epoch = Math.max(...live.map((w) => w.epoch));
    this.members.recover(live);
    this.totalSteps = session.totalSteps;
    this.sizes = session.data;
    this.labels = session.labels;
    this.steps.startAt(r.recordedThrough);
    this.lastComplete = r.recordedThrough;
    this.lastCheckpointStep = r.lastCheckpointStep;
    this.recovering = {};
    const lost = session.workers.filter((w) => !live.some((x) => x.workerId === w));
    this.o.log(`[coordinator] recovering run ${this.o.runId}: ${live.map((w) => `rank ${w.rank} = ${w.workerId} (step ${w.step})`).join(', ')} alive` +
      `${lost.length ? `; not heard: ${lost.join(', ')}` : ''}; metrics.jsonl holds steps through ${r.recordedThrough}; re-forming as ring epoch ${next}`);
    this.reform = new ReformRound(next, `coordinator restarted (run ${this.o.runId})`, live.map((w) => w.workerId), session.workers.length, false, lost);
    this.setPhase('reforming');
    this.progressed();
    this.sendReform();
  }

  private saveSession(): void {
    this.o.session?.({
      job: this.o.job.name, runId: this.o.runId, epoch: this.epoch, workers: this.members.activeWorkers(),
      totalSteps: this.totalSteps, data: this.sizes, labels: [...this.labels],
    });
  }

  /** E2: a standby joiner is loaded: it re-sends Ready until a plan takes it in. */
  private onStandbyReady(r: M['Ready'], sender?: string): void {
    const id = r.workerId ?? '';
    if (sender !== undefined && sender !== id) return this.refuse(`Ready{standby} for ${id} sent by ${sender}`);
    if (!this.members.isStandby(id)) {
      // Already in the ring: it missed the plan that took it in.
      if (this.lastPlan && this.lastPlan.peers.some((p) => p.workerId === id)) this.o.outbox.control({ plan: this.lastPlan });
      return;
    }
    if (this.members.standbyReady(id)) this.admitStandby();
  }

  /** E2: loaded standby workers enter at the next step boundary (training) or with the round in progress. */
  private admitStandby(): void {
    if (this.phase === 'reforming') return this.tryPlan();
    const ready = this.members.readyStandby(this.liveness.timeoutMs);
    if (this.phase !== 'training' || this.reform || !ready.length || this.members.worldSize >= this.limits.maxWorkers) return;
    this.startReform(`worker${ready.length > 1 ? 's' : ''} ${ready.map((w) => w.workerId).join(', ')} join${ready.length > 1 ? '' : 's'}`, [], true);
  }

  // 6. steps
  async onStepReport(r: M['StepReport'], sender?: string): Promise<void> {
    if (r.runId !== this.o.runId || (r.epoch ?? 0) !== this.epoch) return; // another epoch's (a re-send from before a re-form)
    if (!this.fromRank(r.rank, sender, 'StepReport')) return;
    if (this.totalSteps > 0 && r.step > this.totalSteps) return this.refuse(`StepReport for step ${r.step} of ${this.totalSteps}`);
    this.members.alsoAlive(r.rank); // a report is as good as a heartbeat
    const s = this.steps.add(r, this.members.activeCount);
    if (s) await this.completed(s);
    if (s && this.recovering) this.tryPlan(); // R5: the last missing report may be what the plan waits for
  }

  /** A complete step: metrics, record, the replicas' hash check. */
  private async completed(s: CompletedStep): Promise<void> {
    this.lastComplete = Math.max(this.lastComplete, s.step);
    this.progressed();
    this.lastLoss = s.loss;
    this.o.events?.step?.({ step: s.step, loss: s.loss, lr: s.lr, gradNorm: s.gradNorm, tokens: s.tokens, samples: s.samples, tokensPerSecond: s.tokensPerSecond });
    if (s.step % Math.max(1, Math.round(this.totalSteps / 10)) === 0 || s.step === this.totalSteps) {
      this.o.log(`[coordinator] step ${s.step}/${this.totalSteps} loss ${s.loss.toFixed(4)} ${s.tokensPerSecond} tok/s`);
    }
    await this.o.record.train({
      step: s.step, loss: s.loss, lr: s.lr, grad_norm: s.gradNorm, count: s.count, tokens_per_s: s.tokensPerSecond,
      workers: s.workers, tokens: s.tokens, time_ms: Math.round(this.o.record.elapsedMs),
      compute_ms: s.computeMs, reduce_ms_min: s.reduceMsMin, reduce_ms: s.reduceMs, reduce_bytes: s.reduceBytes,
    });
    if (s.hashGroups) {
      this.o.events?.hashCheck?.(s.hashGroups.size === 1);
      if (s.hashGroups.size > 1) this.fail(-1, `replica parameters diverged at step ${s.step} (${describeHashGroups(s.hashGroups)})`);
    }
  }

  // 7. evaluation
  async onEvalReport(e: M['EvalReport'], sender?: string): Promise<void> {
    if (e.runId !== this.o.runId || (e.epoch ?? 0) !== this.epoch) return;
    if (!this.fromRank(e.rank, sender, 'EvalReport')) return;
    if (this.totalSteps > 0 && e.step > this.totalSteps) return this.refuse(`EvalReport for step ${e.step} of ${this.totalSteps}`);
    // A rank re-sends its report until it hears the decision: it missed it.
    const decided = this.decisions.get(e.step);
    if (decided) return this.o.outbox.control({ evalDecision: decided });
    if (this.reform && !this.reform.atBoundary) return; // a rank was lost: the evaluation is abandoned with the step
    const merged = this.evals.add(e.step, e.rank, parseEvalState(e.stateJson, `EvalReport from rank ${e.rank} for step ${e.step}`), this.members.activeCount);
    if (!merged) return;
    const r = merged.result;
    this.o.events?.eval?.(e.step, r);
    await this.o.record.eval(e.step, r, classificationReport(merged.state, this.labels));
    this.o.log(`[coordinator] step ${e.step} eval: ${Object.entries(r).map(([k, v]) => `${k} ${+v.toFixed(4)}`).join(', ')}`);
    let stop = false;
    try {
      stop = this.o.record.shouldStop(e.step, r, this.totalSteps);
    } catch (err) {
      return this.fail(-1, (err as Error).message);
    }
    if (stop) this.stoppedEarly = true;
    const { best, badEvals } = this.o.record.earlyStopping() ?? { best: NaN, badEvals: 0 };
    const decision = { step: e.step, stop, best, badEvals };
    this.decisions.set(e.step, decision);
    this.progressed();
    this.o.outbox.control({ evalDecision: decision });
  }

  // 8. checkpoints
  onCheckpoint(c: M['CheckpointReport'], sender?: string): void {
    if (c.runId !== this.o.runId || !this.fromRank(0, sender, 'CheckpointReport')) return;
    if (c.step <= this.lastCheckpointStep) return; // a re-send
    this.lastCheckpointStep = c.step;
    this.progressed();
    this.o.events?.checkpoint?.(c.step);
    this.o.log(`[coordinator] checkpoint step ${c.step}: ${c.path}`);
  }

  // 9. liveness
  onHeartbeat(h: M['Heartbeat'], sender?: string): void {
    if (sender !== undefined && sender !== h.workerId) return this.refuse(`Heartbeat for ${h.workerId} sent by ${sender}`);
    this.members.heartbeat(h);
  }

  onFailed(f: M['Failed'], sender?: string): void {
    if (f.runId !== this.o.runId) return;
    // A survivor of an earlier epoch: its loss report is about a ring already given up.
    if (f.survivor && (f.epoch ?? 0) !== this.epoch) return;
    if (!this.fromRank(f.rank, sender, 'Failed')) return;
    if (f.survivor && f.lostRank >= 0) this.lose(f.lostRank, `lost (reported by rank ${f.rank}): ${f.error}`);
    else if (f.lostRank >= 0) this.fail(f.lostRank, `lost (reported by rank ${f.rank}): ${f.error}`);
    else this.fail(f.rank, f.error);
  }

  /** The watchdog, every half heartbeat interval. */
  tick(): void {
    const v = this.liveness.check(this.phase);
    this.o.events?.workersAlive?.(v.alive, this.members.worldSize);
    // While NATS is down nobody can be heard: judge the outage, not the ranks.
    const down = this.o.natsDownMs?.() ?? 0;
    if (down > 0) {
      if (down > this.liveness.timeoutMs && v.lost !== undefined) {
        this.fail(-1, `the coordinator lost its NATS connection ${Math.round(down)} ms ago (longer than cluster.heartbeat_timeout_ms ${this.liveness.timeoutMs}): NATS is down or unreachable`);
      }
      return;
    }
    // Acknowledges reports: every step up to `steps.contiguous` is in; workers re-send the rest.
    if (v.announce) this.o.outbox.control({ alive: { step: this.steps.contiguous, checkpointStep: this.lastCheckpointStep } });
    if (v.lost) return this.lose(v.lost.rank, this.liveness.describe(v.lost));
    if (this.reform) {
      // E1/E2: re-sent until every member reported (a lost Control costs a second, not the run).
      if (performance.now() - this.reformSentMs > 1000) this.sendReform();
      this.tryPlan();
    } else {
      this.admitStandby(); // one that was ready while loading, or while a round was deciding
    }
    const limit = this.o.job.cluster.progressTimeoutMs;
    const still = performance.now() - this.lastProgress;
    if ((this.phase === 'training' || this.phase === 'reforming') && limit > 0 && still > limit) {
      this.fail(-1, `no progress for ${Math.round(still / 1000)} s (cluster.progress_timeout_ms ${limit}): no step, evaluation or checkpoint completed after step ${this.lastComplete} though every rank is alive${busy(this.members.activities())}`);
    }
  }

  /** Asks every rank to stop after the step they are in (they vote in its all-reduce). */
  requestStop(reason: string): void {
    if (this.phase !== 'loading' && this.phase !== 'training') return;
    this.o.log(`[coordinator] ${reason}: asking every rank to stop after the current step`);
    this.o.outbox.control({ stop: {} });
  }

  /** NATS is back: nobody could be heard during the outage, so every rank's clock restarts now. */
  reconnected(): void {
    this.members.graceAll();
  }

  // 10. done
  async onDone(d: M['Done'], sender?: string): Promise<void> {
    if (d.runId !== this.o.runId || !this.fromRank(d.rank, sender, 'Done')) return;
    // A rank re-sends Done until it hears Shutdown: it missed it.
    if (this.phase === 'done') return this.o.outbox.control({ shutdown: {} });
    this.done.add(d.rank);
    this.members.finished(d.rank);
    if (d.stopped) this.stoppedAt = { step: d.step, checkpoint: d.rank === 0 && d.checkpoint ? d.checkpoint : this.stoppedAt?.checkpoint };
    if (this.stoppedAt && this.done.size === this.members.worldSize && this.phase !== 'failed' && this.phase !== 'finishing') {
      // Stopped on request: no final model and no report (as a stopped single-process run); resumable.
      const { step, checkpoint } = this.stoppedAt;
      this.o.log(`[coordinator] stopped on request after step ${step}; ${checkpoint ? `checkpoint ${checkpoint}; resume with --resume` : 'no checkpoint (checkpoint.every_n_steps is 0): this run cannot be resumed'}`);
      this.o.outbox.control({ shutdown: {} });
      this.setPhase('done');
      this.settle.resolve({
        runId: this.o.runId, steps: step, baseEval: this.o.record.baseEval, finalEval: undefined, stoppedEarly: false, finalModelDir: '', stoppedBy: this.stoppedAt,
      });
      return;
    }
    if (d.rank === 0 && d.finalModelDir) this.finalModelDir = d.finalModelDir;
    if (this.done.size < this.members.worldSize || this.phase === 'failed' || this.phase === 'finishing') return;
    this.setPhase('finishing');
    const finalEval = await this.o.record.finish({
      steps: this.lastComplete, stoppedEarly: this.stoppedEarly, data: this.sizes, finalModelDir: this.finalModelDir,
      extra: { run_id: this.o.runId, workers: this.members.worldSize },
    });
    this.o.outbox.control({ shutdown: {} });
    this.setPhase('done');
    this.settle.resolve({
      runId: this.o.runId, steps: this.lastComplete, baseEval: this.o.record.baseEval, finalEval, stoppedEarly: this.stoppedEarly, finalModelDir: this.finalModelDir,
    });
  }

  status(): M['StatusReply'] {
    const { job, runId } = this.o;
    const lastEval = this.o.record.lastEval;
    return {
      job: job.name, runId, phase: this.phase, step: this.lastComplete, totalSteps: this.totalSteps, worldSize: this.members.worldSize,
      workersAlive: this.members.alive(job.cluster.heartbeatTimeoutMs), lastLoss: this.lastLoss, workers: this.members.status(),
      lastEvalJson: lastEval ? stringifyRecord(lastEval) : '', lastCheckpointStep: this.lastCheckpointStep, error: '', epoch: this.epoch,
    };
  }

  /**
   * A rank is gone. Elastic shrink / wait while training or re-forming: drop it and re-form (E1);
   * otherwise (policy fail, or while loading or finishing) the run fails as step 9 says.
   */
  lose(rank: number, reason: string): void {
    const elastic = this.limits.onLoss !== 'fail' && (this.phase === 'training' || this.phase === 'reforming');
    const workerId = this.members.byRank(rank)?.workerId;
    if (!elastic) return this.fail(rank, reason);
    if (workerId === undefined) return; // dropped already (another survivor's report of the same loss)
    this.o.log(`[coordinator] rank ${rank} (${workerId}) lost after step ${this.lastComplete}: ${reason}; elastic.on_loss ${this.limits.onLoss}: re-forming the ring`);
    this.members.drop(rank);
    this.startReform(`rank ${rank} (${workerId}) lost: ${reason}`, [workerId, ...(this.reform?.dropped ?? [])], false);
  }

  /** E1/E2: a new round for epoch + 1 (a loss during a round starts the next one, without the lost). */
  private startReform(reason: string, dropped: string[], atBoundary: boolean): void {
    const epoch = (this.reform?.epoch ?? this.epoch) + 1;
    const worldBefore = this.reform?.worldBefore ?? this.members.worldSize;
    this.reform = new ReformRound(epoch, reason, this.members.activeWorkers(), worldBefore, atBoundary && !this.reform?.dropped.length, dropped);
    this.setPhase('reforming');
    this.progressed();
    this.sendReform();
  }

  private sendReform(): void {
    const r = this.reform!;
    this.reformSentMs = performance.now();
    if (this.recovering) this.o.outbox.control({ recover: { epoch: r.epoch, reason: r.reason } }); // R4
    else this.o.outbox.control({ reform: { epoch: r.epoch, reason: r.reason, dropped: [...r.dropped], atBoundary: r.atBoundary } });
  }

  /** E3: a survivor abandoned its ring and built the next one. */
  onReformReport(r: M['ReformReport'], sender?: string): void {
    if (r.runId !== this.o.runId) return;
    if (sender !== undefined && sender !== r.workerId) return this.refuse(`ReformReport for ${r.workerId} sent by ${sender}`);
    // A member that missed the plan re-sends its report: send the plan again.
    if (!this.reform && r.epoch === this.epoch && this.lastPlan) return this.o.outbox.control({ plan: this.lastPlan });
    if (!this.reform?.add(r)) return;
    this.members.alsoAliveWorker(r.workerId);
    this.members.setRingAddress(r.workerId, r.ringAddress);
    this.tryPlan();
  }

  /** E3: the round's decision, once it can be made. */
  private tryPlan(): void {
    const round = this.reform;
    if (!round || this.phase !== 'reforming') return;
    const d = round.decide(this.members.readyStandby(this.liveness.timeoutMs), this.limits);
    if (d.kind === 'wait') return;
    if (d.kind === 'fail') return this.fail(-1, d.reason);
    if (this.recovering && this.steps.contiguous < d.targetStep) {
      // R5: steps the killed coordinator never recorded come from the workers' re-sent reports (sent
      // with their ReformReports, on another subject): wait briefly so history has no holes.
      const since = (this.recovering.decidableMs ??= performance.now());
      if (performance.now() - since < RECOVER_REPORTS_MS) return;
      this.o.log(`[coordinator] recovering: the reports of steps ${this.steps.contiguous + 1}..${d.targetStep} did not all come in ${RECOVER_REPORTS_MS} ms; ` +
        'recording those that did (partial totals), the others are missing from metrics.jsonl');
    }
    if (this.recovering) this.o.log(`[coordinator] recovered run ${this.o.runId}: every step through ${d.targetStep} applied and recorded`);
    this.recovering = undefined;
    this.reform = undefined;
    this.epoch = round.epoch;
    this.members.reRank(d.peers.map((p) => p.workerId));
    this.evals = new EvalBook();
    for (const s of this.steps.completeThrough(d.targetStep)) void this.completed(s);
    this.lastComplete = Math.max(this.lastComplete, d.targetStep);
    // An evaluation due after the target step whose decision never went out was abandoned: run it again.
    const every = this.o.job.eval.everyNSteps;
    const evaluate = every > 0 && d.targetStep > 0 && d.targetStep % every === 0 && d.targetStep < this.totalSteps && !this.evaluated(d.targetStep);
    this.lastPlan = { epoch: round.epoch, peers: d.peers, targetStep: d.targetStep, sourceRank: d.sourceRank, evaluate };
    this.setPhase('training');
    this.progressed();
    this.o.outbox.control({ plan: this.lastPlan });
    this.saveSession();
    this.o.log(`[coordinator] ring epoch ${round.epoch}: ${d.peers.length} workers from step ${d.targetStep} (state from rank ${d.sourceRank})` +
      `${d.joined.length ? `; joined: ${d.joined.join(', ')}` : ''}: ${d.peers.map((p) => `rank ${p.rank} = ${p.workerId} @ ${p.ringAddress}`).join(', ')}`);
  }

  /** True when the evaluation after `step` was decided (by this coordinator or, recovered, the killed one). */
  private evaluated(step: number): boolean {
    return this.decisions.has(step) || this.o.record.history.lines.some((l) => l.type === 'eval' && l.step === step);
  }

  /** Stops the run: Abort to every rank, and `finished` rejects naming the rank and the last complete step. */
  fail(rank: number, reason: string): void {
    if (this.phase === 'failed' || this.phase === 'done') return;
    this.setPhase('failed');
    this.o.outbox.control({ abort: { reason, rank, lastStep: this.lastComplete } });
    const where = rank >= 0 ? `rank ${rank} (${this.members.byRank(rank)?.workerId ?? 'unknown worker'})` : 'the run';
    const ckpt = this.lastCheckpointStep ? `latest checkpoint: step ${this.lastCheckpointStep} in ${this.o.job.checkpoint.dir}` : 'no checkpoint was written';
    this.settle.reject(new RunFailedError(`${where} failed after step ${this.lastComplete} (last step completed by every rank): ${reason}; ${ckpt}`));
  }

  /**
   * True when `rank` is a rank of this run and (when known) `sender` is the worker assigned to it;
   * otherwise the message is refused and counted.
   */
  private fromRank(rank: number, sender: string | undefined, what: string): boolean {
    const worker = this.members.byRank(rank)?.workerId;
    if (worker === undefined) {
      this.refuse(`${what} from rank ${rank}, outside the run's ${this.members.worldSize} ranks`);
      return false;
    }
    if (sender !== undefined && sender !== worker) {
      this.refuse(`${what} for rank ${rank} (${worker}) sent by ${sender}`);
      return false;
    }
    return true;
  }

  private refuse(detail: string): void {
    this.o.refuse?.(detail);
  }

  private progressed(): void {
    this.lastProgress = performance.now();
  }

  private setPhase(p: CoordinatorPhase): void {
    this.phase = p;
    this.o.events?.phase?.(p);
    this.o.log(`[coordinator] ${p}`);
  }
}

export async function runCoordinator(o: CoordinatorOptions): Promise<RunSummary> {
  const { job } = o;
  // 1. compile (done by the caller), resume point, record, NATS, subscriptions in protocol order
  const subj = subjects(job.name);
  const auth = new ControlAuth(o.secret, job.name, `coordinator-${randomBytes(4).toString('hex')}`);
  const connect = () => Bus.connect({ ...o.bus, name: `ringtune-coordinator-${job.name}` }, auth, o.log);
  // R1-R2 (recovery.ts): a killed coordinator's session whose workers still train is taken over.
  const sessions = o.recoverIfLive ? new SessionFile(job.checkpoint.dir) : undefined;
  const killed = await sessions?.read(job.name);
  let bus: Bus | undefined;
  let heartbeatTo: ((h: M['Heartbeat'], sender: string) => void) | undefined;
  let live: LiveWorker[] = [];
  if (killed) {
    bus = await connect();
    bus.subscribe(subj.heartbeat, 'Heartbeat', (h, meta) => heartbeatTo?.(h, meta.sender));
    const windowMs = Math.max(1500, 4 * job.cluster.heartbeatIntervalMs);
    o.log(`[coordinator] ${sessions!.file}: run ${killed.runId}'s coordinator was killed; listening ${windowMs} ms for its workers`);
    live = await findLiveWorkers(killed, windowMs, (handler) => (heartbeatTo = handler));
    if (!live.length) o.log(`[coordinator] no worker of run ${killed.runId} is training: starting as a restarted job does (from the latest checkpoint, if any)`);
  }
  try {
    let runId: string, record: RunRecord, resumeFrom: string | undefined, resumedStep: number | undefined, recovered: RecoveredRun | undefined;
    if (killed && live.length) {
      // R3: the same run, its record continued; the checkpoint directory is rank 0's to write (no claim).
      runId = killed.runId;
      const at = await continueRecord(job, killed);
      record = at.record;
      recovered = { session: killed, live, recordedThrough: at.recordedThrough, lastCheckpointStep: at.lastCheckpointStep };
    } else {
      // The checkpoint directory belongs to this run from here: refused if another run's is there
      // (unless --resume or --overwrite), staging leftovers removed. Before RunRecord.open touches history.
      const claim = await claimCheckpointDir(job.checkpoint.dir, { resume: o.resume, overwrite: o.overwrite, outputDir: job.outputDir });
      resumeFrom = claim.resumed?.checkpoint;
      resumedStep = claim.resumed?.state.step;
      record = await RunRecord.open(job, claim.resumed?.state, claim.resumed?.history);
      // Messages name this session; a fresh run's checkpoints take the same id (rank 0 reads it from the
      // Assignment), a resumed run keeps its checkpoint's and gets a new session id, so workers left
      // over from the killed session cannot match it.
      runId = claim.resumed ? newRunId() : claim.runId;
    }
    bus ??= await connect();
    return await coordinate(o, bus, { runId, record, resumeFrom, resumedStep, recovered, sessions, heartbeats: (h) => (heartbeatTo = h), subscribed: !!killed });
  } finally {
    await bus?.flush().catch(() => {});
    await bus?.close();
  }
}

/** Runs one coordinator session on a connected bus until its run ends. */
async function coordinate(o: CoordinatorOptions, bus: Bus, s: {
  runId: string; record: RunRecord; resumeFrom?: string; resumedStep?: number; recovered?: RecoveredRun; sessions?: SessionFile;
  /** The heartbeat subscription recovery.ts made (`subscribed`), or none yet. */
  heartbeats: (h: (msg: M['Heartbeat'], sender: string) => void) => void; subscribed: boolean;
}): Promise<RunSummary> {
  const { job } = o;
  const { runId, record, resumeFrom } = s;
  const subj = subjects(job.name);
  bus.onReject = (reason) => o.events?.rejected?.(reason);
  const c = new Coordinator({
    job, runId, record, log: o.log, events: o.events, resumeFrom,
    refuse: (detail) => bus.countRejected('invalid', 'run', detail),
    natsDownMs: () => bus.disconnectedMs,
    outbox: {
      control: (msg) => bus.publish(subj.control, 'Control', { runId, ...msg }),
      assign: (workerId, a) => bus.publish(subj.worker(workerId), 'Assignment', a),
    },
    session: s.sessions && ((x) => void s.sessions!.save(x).catch((err: Error) => o.log(`[coordinator] ${s.sessions!.file}: ${err.message} (a restarted coordinator could not recover this run)`))),
  });
  bus.onConnection = (up) => { if (up) c.reconnected(); };
  o.events?.started?.({ status: () => c.status(), nats: bus.nc });
  // A handler that throws (a malformed report) stops the run with the reason instead of the process.
  const guarded = <T>(handler: (msg: T, sender: string) => void | Promise<void>) => async (msg: T, meta: MessageMeta) => {
    try {
      await handler(msg, meta.sender);
    } catch (err) {
      c.fail(-1, (err as Error).message);
    }
  };
  const onHeartbeat = guarded<M['Heartbeat']>((h, from) => c.onHeartbeat(h, from));
  bus.subscribe(subj.join, 'Join', guarded((j, from) => c.onJoin(j, from))); // 2-3
  bus.subscribe(subj.ready, 'Ready', guarded((r, from) => c.onReady(r, from))); // 4-5
  bus.subscribe(subj.step, 'StepReport', guarded((r, from) => c.onStepReport(r, from))); // 6
  bus.subscribe(subj.eval, 'EvalReport', guarded((e, from) => c.onEvalReport(e, from))); // 7
  bus.subscribe(subj.checkpoint, 'CheckpointReport', guarded((k, from) => c.onCheckpoint(k, from))); // 8
  if (s.subscribed) s.heartbeats((h, from) => void onHeartbeat(h, { sender: from })); // 9 (subscribed by recovery.ts)
  else bus.subscribe(subj.heartbeat, 'Heartbeat', onHeartbeat); // 9
  bus.subscribe(subj.failed, 'Failed', guarded((f, from) => c.onFailed(f, from)));
  bus.subscribe(subj.reform, 'ReformReport', guarded((r, from) => c.onReformReport(r, from))); // E3
  bus.subscribe(subj.done, 'Done', guarded((d, from) => c.onDone(d, from))); // 10
  // Only an authenticated request gets here: the bus dropped the rest.
  bus.subscribe(subj.status, 'StatusRequest', (_req, meta) => { if (meta.reply) bus.respond(meta.reply, 'StatusReply', c.status()); });
  const joinTimer = s.recovered ? undefined : setTimeout(() => c.joinTimedOut(), job.cluster.joinTimeoutMs);
  o.stop?.addEventListener('abort', () => {
    c.requestStop(String(o.stop!.reason ?? 'stop'));
    // Before the run started there is nothing to checkpoint: stop at once.
    if (c.currentPhase === 'waiting-for-workers') c.fail(-1, `stopped by ${String(o.stop!.reason ?? 'a signal')} before the run started`);
  }, { once: true });
  const watchdog = setInterval(() => c.tick(), Math.max(100, Math.floor(job.cluster.heartbeatIntervalMs / 2)));

  if (s.recovered) c.recover(s.recovered); // R4
  else o.log(`[coordinator] job ${job.name}: waiting for ${job.cluster.workers} workers${resumeFrom ? `, resuming from step ${s.resumedStep} (checkpoint ${resumeFrom})` : ''}`);
  try {
    return await c.finished;
  } finally {
    clearTimeout(joinTimer);
    clearInterval(watchdog);
    // The run ended (done, failed or stopped): nothing is left for a restarted coordinator to recover.
    await s.sessions?.remove().catch(() => {});
  }
}

/** "; busy: rank 1: ... for 812 s; rank 0: ..." or nothing when no rank reported an activity. */
function busy(activities: string[]): string {
  return activities.length ? `; busy: ${activities.join('; ')}` : '';
}
