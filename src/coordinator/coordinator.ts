/**
 * The coordinator: one per job. The protocol, as it runs here (subjects in control/subjects.ts,
 * payloads in proto/ringtune/v1/control.proto):
 *
 *  1. Compile the job, connect to NATS, subscribe to join / ready / heartbeat / step / eval /
 *     checkpoint / done / failed / status. With --resume, find the latest checkpoint. With
 *     --resume-if-present, first R1-R3 below (main.ts).
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
 *     The coordinator in turn sends Control.CoordinatorAlive; workers stop if it falls silent
 *     (2 x heartbeat_timeout_ms), or with cluster.coordinator_recovery_ms > 0 train on that much
 *     longer waiting for a restarted coordinator (R1-R5).
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
 * E4. A worker that gets SIGTERM (a drained pod) under shrink | wait sends Leave instead of voting to
 *     stop the run. Training: Control.Reform{e+1, at_boundary} as for a join; every rank stops after the
 *     same step; the leaver sends Leave{left, step} and exits; it is dropped as in E1 (no heartbeat
 *     timeout), and E3 re-forms without it (wait: with its replacement). Asked while a round forms:
 *     it leaves from that round. Under fail, or while loading or finishing: the run stops at a
 *     checkpoint (Control.Stop, step 9's stop), as a SIGTERM did before.
 *
 * Coordinator restart (docs/reliability.md; recovery.ts R1-R3, elastic.ts R4-R5):
 * R1. A coordinator started with --resume-if-present, of a job with cluster.coordinator_recovery_ms > 0,
 *     keeps its session (run id, ring epoch and members, totals) in the checkpoint directory from
 *     Start on; a restarted one reads it.
 * R2. It listens to heartbeats: workers still training that run id are alive. None: step 1 as before.
 * R3. The run's record continues (metrics.jsonl as the killed coordinator left it; early stopping replayed).
 * R4. The live workers are the members at their ranks; Control.recover{epoch above any they know}
 *     (re-sent every second) makes them take this coordinator as theirs (it authenticates with the job
 *     secret and names their run), re-send every unacknowledged report and answer as to E3's Reform.
 * R5. E3's rule decides the plan (target = most advanced applied step); it waits up to 3 s for the
 *     re-sent reports of the steps the killed coordinator never recorded, which complete them, once.
 *     Missing workers are the elastic policy's (wait / shrink / fail), as after a loss.
 *
 * Parts: membership.ts (joins, ranks, heartbeats), liveness.ts (the watchdog's verdict),
 * step-book.ts (step completion), eval-book.ts (eval merge), elastic.ts (E1-E3, R4-R5) with
 * reform.ts (a round's decision), recovery.ts and session-file.ts (R1-R3), src/run/record.ts
 * (history, early stopping, reports). `Coordinator` holds one handler per protocol step above and
 * speaks through an `Outbox`, so it runs (and is tested) without NATS; main.ts `runCoordinator`
 * wires it to the bus, in order.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { RejectReason } from '../control/auth.ts';
import type { Bus, ControlMessages } from '../control/bus.ts';
import type { CoordinatorPhase } from '../control/phases.ts';
import { RingtuneError } from '../errors.ts';
import { classificationReport } from '../eval/classification-report.ts';
import { parseEvalState, type EvalResult } from '../eval/eval-state.ts';
import { finalModelDir } from '../run/outputs.ts';
import type { RunRecord } from '../run/record.ts';
import { EvalBook } from './eval-book.ts';
import { Liveness } from './liveness.ts';
import { Membership } from './membership.ts';
import { ElasticRounds } from './elastic.ts';
import { keepInStepOrder } from './history-order.ts';
import { describeHashGroups, StepBook, stepRanges, type CompletedStep } from './step-book.ts';
import { stringifyRecord } from '../run/record-json.ts';
import type { RecoveredRun } from './recovery.ts';
import type { CoordinatorSession } from './session-file.ts';

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
  /** E1-E3, R4-R5 (elastic.ts): the ring epoch, the round forming the next one, the limits. */
  private readonly elastic: ElasticRounds;
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
  /** The record's writes, one at a time in call order (history-order.ts keeps metrics.jsonl in step order). */
  private writes: Promise<void> = Promise.resolve();
  /** Complete steps whose metrics.jsonl line is not written yet: not acknowledged until it is. */
  private readonly writing = new Set<number>();
  private settle!: { resolve: (s: RunSummary) => void; reject: (e: Error) => void };

  constructor(private readonly o: CoordinatorInit) {
    this.members = new Membership(o.job.cluster.workers);
    this.liveness = new Liveness(this.members, o.job.cluster.heartbeatTimeoutMs);
    this.finalModelDir = finalModelDir(o.job.outputDir);
    // --workers may override cluster.workers after compile: the limits always include it.
    const { elastic, cluster } = o.job;
    this.elastic = new ElasticRounds({
      job: o.job, runId: o.runId, members: this.members, timeoutMs: this.liveness.timeoutMs, log: o.log,
      control: (c) => o.outbox.control(c),
      phase: () => this.phase,
      setPhase: (p) => this.setPhase(p),
      progressed: () => this.progressed(),
      fail: (rank, reason) => this.fail(rank, reason),
      contiguous: () => this.steps.contiguous,
      unreported: (step) => this.steps.unreported(step),
      lastComplete: () => this.lastComplete,
      totalSteps: () => this.totalSteps,
      evaluated: (step) => this.decisions.has(step) || o.record.history.lines.some((l) => l.type === 'eval' && l.step === step),
      planned: (target) => {
        this.evals = new EvalBook();
        const { partial, missing } = this.steps.completeThrough(target);
        if (missing.length) o.log(`[coordinator] no report of step${missing.length > 1 ? 's' : ''} ${stepRanges(missing)} came in; the ring goes on from step ${target}: missing from metrics.jsonl`);
        for (const done of partial) void this.completed(done);
        this.lastComplete = Math.max(this.lastComplete, target);
        this.saveSession();
      },
    }, {
      onLoss: elastic.onLoss, waitTimeoutMs: elastic.waitTimeoutMs,
      minWorkers: Math.min(elastic.minWorkers, cluster.workers), maxWorkers: Math.max(elastic.maxWorkers, cluster.workers),
    });
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
      for (const id of this.members.forgetSilentStandby(this.liveness.timeoutMs)) {
        this.assignments.delete(id);
        this.o.log(`[coordinator] standby ${id} sent no heartbeat for ${this.liveness.timeoutMs} ms: forgotten`);
      }
      const mine = this.assignments.get(j.workerId);
      if (mine) {
        if (this.phase === 'loading' || mine.standby) this.o.outbox.assign(j.workerId, mine);
      } else if ((this.phase === 'loading' || this.phase === 'training' || this.phase === 'reforming') && this.members.size < this.elastic.limits.maxWorkers) {
        this.joinRunning(j); // E2
      } else {
        this.o.outbox.assign(j.workerId, {
          runId: this.o.runId, workerId: j.workerId, rank: 0, worldSize: 0, peers: [], compiledJobJson: '', resumeFrom: '',
          refused: `run ${this.o.runId} already has its ${this.members.worldSize} workers (phase ${this.phase}; elastic.max_workers ${this.elastic.limits.maxWorkers})`,
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
      // No checkpoint: the state comes by broadcast at the re-form. The checkpoint this coordinator
      // resumed from may be rotated away by now (checkpoint.keep), and loading it would fail.
      resumeFrom: '', epoch: this.elastic.epoch, standby: true,
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
    if (r.standby) {
      // E2: a standby joiner is loaded; it re-sends Ready until a plan takes it in.
      if (sender !== undefined && sender !== r.workerId) return this.refuse(`Ready{standby} for ${r.workerId} sent by ${sender}`);
      return this.elastic.standbyReady(r.workerId ?? '');
    }
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
    this.members.recover(live);
    this.totalSteps = session.totalSteps;
    this.sizes = session.data;
    this.labels = session.labels;
    this.steps.startAt(r.recordedThrough, r.recordedAbove);
    this.lastComplete = Math.max(r.recordedThrough, ...r.recordedAbove);
    this.lastCheckpointStep = r.lastCheckpointStep;
    const lost = session.workers.filter((w) => !live.some((x) => x.workerId === w));
    this.o.log(`[coordinator] recovering run ${this.o.runId}: ${live.map((w) => `rank ${w.rank} = ${w.workerId} (step ${w.step})`).join(', ')} alive` +
      `${lost.length ? `; not heard: ${lost.join(', ')}` : ''}; metrics.jsonl holds steps through ${r.recordedThrough}` +
      `${r.recordedAbove.length ? ` and ${stepRanges(r.recordedAbove)} (the others are taken from the re-sent reports)` : ''}; re-forming the ring`);
    this.elastic.recover(live, session.epoch, session.workers.length, lost);
  }

  private saveSession(): void {
    this.o.session?.({
      job: this.o.job.name, runId: this.o.runId, epoch: this.elastic.epoch, workers: this.members.activeWorkers(),
      totalSteps: this.totalSteps, data: this.sizes, labels: [...this.labels],
    });
  }

  // 6. steps
  async onStepReport(r: M['StepReport'], sender?: string): Promise<void> {
    if (r.runId !== this.o.runId || (r.epoch ?? 0) !== this.elastic.epoch) return; // another epoch's (a re-send from before a re-form)
    if (!this.fromRank(r.rank, sender, 'StepReport')) return;
    if (this.totalSteps > 0 && r.step > this.totalSteps) return this.refuse(`StepReport for step ${r.step} of ${this.totalSteps}`);
    this.members.alsoAlive(r.rank); // a report is as good as a heartbeat
    const s = this.steps.add(r, this.members.activeCount);
    if (s) await this.completed(s);
    if (s) this.elastic.stepRecorded(); // R5: the last missing report may be what a recovered round waits for
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
    const timeMs = Math.round(this.o.record.elapsedMs);
    this.writing.add(s.step);
    await this.inOrder(() => this.o.record.train({
      step: s.step, loss: s.loss, lr: s.lr, grad_norm: s.gradNorm, count: s.count, tokens_per_s: s.tokensPerSecond,
      workers: s.workers, tokens: s.tokens, time_ms: timeMs,
      compute_ms: s.computeMs, reduce_ms_min: s.reduceMsMin, reduce_ms: s.reduceMs, reduce_bytes: s.reduceBytes,
    })).finally(() => this.writing.delete(s.step));
    if (s.hashGroups) {
      this.o.events?.hashCheck?.(s.hashGroups.size === 1);
      if (s.hashGroups.size > 1) this.fail(-1, `replica parameters diverged at step ${s.step} (${describeHashGroups(s.hashGroups)})`);
    }
  }

  // 7. evaluation
  async onEvalReport(e: M['EvalReport'], sender?: string): Promise<void> {
    if (e.runId !== this.o.runId || (e.epoch ?? 0) !== this.elastic.epoch) return;
    if (!this.fromRank(e.rank, sender, 'EvalReport')) return;
    if (this.totalSteps > 0 && e.step > this.totalSteps) return this.refuse(`EvalReport for step ${e.step} of ${this.totalSteps}`);
    // A rank re-sends its report until it hears the decision: it missed it.
    const decided = this.decisions.get(e.step);
    if (decided) return this.o.outbox.control({ evalDecision: decided });
    if (this.elastic.abandoning) return; // a rank was lost: the evaluation is abandoned with the step
    const merged = this.evals.add(e.step, e.rank, parseEvalState(e.stateJson, `EvalReport from rank ${e.rank} for step ${e.step}`), this.members.activeCount);
    if (!merged) return;
    const r = merged.result;
    this.o.events?.eval?.(e.step, r);
    await this.inOrder(() => this.o.record.eval(e.step, r, classificationReport(merged.state, this.labels)));
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

  /** Settles when every record write started so far has settled (a line is in metrics.jsonl once this resolves). */
  recordWritten(): Promise<void> {
    return this.writes;
  }

  /**
   * Runs the record's writes one at a time in call order (concurrent appends may land in any order),
   * and puts a line that came late (a re-sent report completed its step after later ones) in its place.
   */
  private inOrder(write: () => Promise<void>): Promise<void> {
    const done = this.writes.then(write).then(async () => {
      const last = this.o.record.history.lines.at(-1);
      if (await keepInStepOrder(this.o.record.history)) this.o.log(`[coordinator] a late line (${last?.type} step ${last?.step}) put in step order in metrics.jsonl`);
    });
    this.writes = done.catch(() => {});
    return done;
  }

  /**
   * What Control.alive acknowledges: every step up to it is complete and its line written. A step is
   * acknowledged once, and only then do the workers forget its report: an acknowledgement past a hole,
   * or before the line is on disk, would lose the step from the history for good when this coordinator
   * dies (nobody re-sends it to the next one).
   */
  private acknowledgedStep(): number {
    const unwritten = this.writing.size ? Math.min(...this.writing) - 1 : Infinity;
    return Math.min(this.steps.contiguous, unwritten);
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
    if (f.survivor && (f.epoch ?? 0) !== this.elastic.epoch) return;
    if (!this.fromRank(f.rank, sender, 'Failed')) return;
    if (f.survivor && this.elastic.abandoning && this.members.byRank(f.lostRank)) {
      // Every member was told to close its ring (a loss's or a restart's round): a rank whose Reform or
      // Recover came later than its neighbour's sees that neighbour's ring close and blames it. Not a
      // loss; one that really died during the round is found by its heartbeats (step 9).
      this.o.log(`[coordinator] rank ${f.rank} reports rank ${f.lostRank} lost during re-form ${this.elastic.roundEpoch}: its ring was closed for the re-form; not a loss`);
      return;
    }
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
    // Acknowledges reports: every step up to this one is recorded; workers re-send the rest.
    if (v.announce) this.o.outbox.control({ alive: { step: this.acknowledgedStep(), checkpointStep: this.lastCheckpointStep } });
    if (v.lost) return this.lose(v.lost.rank, this.liveness.describe(v.lost));
    this.elastic.tick(); // E1-E3: a round's Control again, its plan, or a loaded standby's entry
    const limit = this.o.job.cluster.progressTimeoutMs;
    const still = performance.now() - this.lastProgress;
    if ((this.phase === 'training' || this.phase === 'reforming') && limit > 0 && still > limit) {
      this.fail(-1, `no progress for ${Math.round(still / 1000)} s (cluster.progress_timeout_ms ${limit}): no step, evaluation or checkpoint completed after step ${this.lastComplete} though every rank is alive${busy(this.members.activities())}`);
    }
  }

  /**
   * Asks every rank to stop after the step they are in (they vote in its all-reduce). While a round
   * forms, it no longer waits for replacements: the ranks stop after the first step of the new ring.
   */
  requestStop(reason: string): void {
    if (this.phase !== 'loading' && this.phase !== 'training' && this.phase !== 'reforming') return;
    this.o.log(`[coordinator] ${reason}: asking every rank to stop after the current step`);
    this.elastic.stopping = true;
    this.o.outbox.control({ stop: {} });
  }

  /** E4: a worker leaves the run (SIGTERM under elastic shrink | wait). */
  onLeave(l: M['Leave'], sender?: string): void {
    if (l.runId !== this.o.runId) return;
    if (sender !== undefined && sender !== l.workerId) return this.refuse(`Leave for ${l.workerId} sent by ${sender}`);
    if (this.members.byRank(l.rank)?.workerId !== l.workerId) return; // gone already (dropped, or its Leave re-sent)
    if (this.elastic.stopping) return this.o.outbox.control({ stop: {} }); // the whole run stops: it stops with it
    if (!this.elastic.leave(l.rank, l.workerId, l.reason, l.left)) this.requestStop(`rank ${l.rank} (${l.workerId}) asks to leave (${l.reason})`);
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
    await this.writes; // every line in metrics.jsonl before the reports are made from it
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
      lastEvalJson: lastEval ? stringifyRecord(lastEval) : '', lastCheckpointStep: this.lastCheckpointStep, error: '', epoch: this.elastic.epoch,
    };
  }

  /** A rank is gone: elastic.ts E1 re-forms (shrink, wait) or fails the run (fail; loading; finishing). */
  lose(rank: number, reason: string): void {
    this.elastic.lose(rank, reason);
  }

  /** E3: a survivor abandoned its ring and built the next one. */
  onReformReport(r: M['ReformReport'], sender?: string): void {
    if (r.runId !== this.o.runId) return;
    if (sender !== undefined && sender !== r.workerId) return this.refuse(`ReformReport for ${r.workerId} sent by ${sender}`);
    this.elastic.report(r);
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

/** "; busy: rank 1: ... for 812 s; rank 0: ..." or nothing when no rank reported an activity. */
function busy(activities: string[]): string {
  return activities.length ? `; busy: ${activities.join('; ')}` : '';
}
