/**
 * A worker process. Lifecycle (a documented string union, reported in every heartbeat):
 *   joining  -> announces itself (Join, every second) until the coordinator assigns a rank
 *   loading  -> model, tokenizer and the whole dataset (the batch plan indexes it globally), ring connect
 *   training -> the step loop (step-loop.ts) until the last step or an early stop
 *   done | failed
 * Any error ends the worker: it reports Failed (naming itself and the step) and exits non-zero; the
 * coordinator stops the others. An Abort from the coordinator closes the ring, which fails any
 * collective in progress at once.
 * Coordinator restart (docs/reliability.md): when the coordinator falls silent (2 x
 * heartbeat_timeout_ms) the worker trains on for cluster.coordinator_recovery_ms more, heartbeating and
 * keeping its reports, and takes a Control.recover naming this run from a new sender (authenticated
 * with the job secret) as its coordinator's: it re-sends what the old one never acknowledged and
 * re-forms as for Control.reform. No coordinator within the bound: it aborts, saying so.
 * Signals (docs/reliability.md, "Signals"): SIGTERM/SIGINT while joining ends the worker at once (it
 * holds nothing); so does an authenticated Abort (the job's coordinator gave up). Assigned, under
 * elastic.on_loss shrink | wait, the worker leaves the run (coordinator.ts E4): it asks with Leave,
 * stops at the step boundary the coordinator's Reform sets (or from a re-form it is waiting in), says
 * Leave{left} and returns; the others re-form without it. Under fail, every rank stops after the same
 * step and rank 0 checkpoints (the stop vote), as before.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CompiledJob, Threads } from '../config/compile.ts';
import { GrpcRing } from '../collective/grpc-ring.ts';
import type { RingTlsOptions } from '../collective/ring-options.ts';
import { ControlAuth, type RejectReason } from '../control/auth.ts';
import { Bus, type BusOptions, type ControlMessages, type MessageMeta } from '../control/bus.ts';
import type { WorkerPhase } from '../control/phases.ts';
import { subjects } from '../control/subjects.ts';
import { InputError, RingtuneError } from '../errors.ts';
import { hubOptionsFromEnv, type HubOptions } from '../hub/hub-options.ts';
import { resolveJobModel } from '../hub/resolve.ts';
import { setThreads, type BackendInfo } from '../model/backend.ts';
import { wallMs } from './activity.ts';
import { HeartbeatLink } from './heartbeat-link.ts';
import { Resender } from './resender.ts';
import { packState, unpackState } from './state-transfer.ts';
import { paramHash, prepareWorkerState, runSteps, type StepsOutcome, type WorkerEvents } from './step-loop.ts';

export interface WorkerOptions {
  bus: BusOptions;
  job: string;
  ringHost: string;
  ringPort: number;
  /** host:port other ranks dial; default ringHost (127.0.0.1 for 0.0.0.0) and the ring port. */
  advertise?: string;
  rankHint: number;
  /** The job's shared secret (auth.ts loadJobSecret): authenticates every control message, derives the ring token. */
  secret: string;
  /** Overrides the ring token derived from the secret. */
  ringToken?: string;
  backend: BackendInfo;
  /** Where a hub model comes from when the job names one and this machine has no directory for it (default: the HF_* environment). */
  hub?: HubOptions;
  /** --threads / RINGTUNE_THREADS; undefined: the job's `threads` applies once the assignment brings the job. */
  threads?: Threads;
  metricsPort: number;
  log: (line: string) => void;
  traceFile?: string;
  /** Aborted by SIGTERM/SIGINT: this rank votes to stop, and every rank stops after the same step. */
  stop?: AbortSignal;
  /** Observers for metrics. */
  events?: WorkerEvents & { phase?: (p: WorkerPhase) => void; assigned?: (rank: number) => void; left?: () => void; rejected?: (reason: RejectReason) => void; ring?: (ring: GrpcRing) => void; nats?: (nc: Bus['nc']) => void };
}

export class WorkerAbortedError extends RingtuneError {
  override readonly name: string = 'WorkerAbortedError';
}

/** SIGTERM/SIGINT while joining: nothing to save; runWorker returns (the CLI exits 128 + the signal). */
class StoppedWhileJoining extends RingtuneError {
  override readonly name: string = 'StoppedWhileJoining';
}

/** This worker left the run on SIGTERM (E4): runWorker says so and returns. */
class LeftRun extends RingtuneError {
  override readonly name: string = 'LeftRun';
}

/** A re-form abandons what this rank was waiting for (an evaluation decision); the worker re-forms. */
class ReformInterrupt extends RingtuneError {
  override readonly name: string = 'ReformInterrupt';
}

/** A new ring on the port the previous epoch's ring just closed: retried briefly while the OS frees it. */
async function withPortRetry(create: () => Promise<GrpcRing>): Promise<GrpcRing> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      if (attempt >= 20 || !/EADDRINUSE/.test(String((err as Error).message))) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The run had no place for this worker (it already had its workers). */
export class WorkerRefusedError extends RingtuneError {
  override readonly name: string = 'WorkerRefusedError';
}

/** What is wrong with an assignment, or undefined: peers must be the ranks 0..N-1 in order and the job must parse. */
function assignmentProblem(a: ControlMessages['Assignment']): string | undefined {
  if (!a.runId) return 'Assignment without a run id';
  // A standby joiner gets its rank and peers from the re-form plan that takes it in.
  if (a.standby) {
    if (a.peers.length || a.worldSize) return 'standby Assignment with peers';
  } else if (a.rank >= a.worldSize || a.peers.length !== a.worldSize || a.peers.some((p, i) => p.rank !== i)) {
    return `Assignment of rank ${a.rank} in a world of ${a.worldSize} with ${a.peers.length} peers`;
  }
  if (!a.standby && a.peers[a.rank].workerId !== a.workerId) return `Assignment whose peer ${a.rank} is not this worker`;
  try {
    const job = JSON.parse(a.compiledJobJson) as Partial<CompiledJob>;
    if (typeof job?.name !== 'string' || typeof job.cluster !== 'object' || typeof job.training !== 'object') return 'Assignment with a job that is not a compiled job';
  } catch (err) {
    return `Assignment with unreadable job JSON (${(err as Error).message})`;
  }
  return undefined;
}

/** cluster.ring_tls -> the ring's TLS options (mutual TLS: every rank presents its certificate). */
function ringTls(job: CompiledJob): RingTlsOptions | undefined {
  const t = job.cluster.ringTls;
  if (!t) return undefined;
  if (!t.caFile || !t.certFile || !t.keyFile) throw new InputError('cluster.ring_tls needs ca, cert and key');
  return { caPath: t.caFile, certPath: t.certFile, keyPath: t.keyFile, mutual: true };
}

/** The ring's refusals since the last call, one log line at most every 10 s (they are in /metrics too). */
const ringRefusalsLogged = new WeakMap<GrpcRing, number>();
function logRingRefusals(ring: GrpcRing, log: (line: string) => void): void {
  const counts = Object.entries(ring.rejected).filter(([, n]) => n > 0);
  const total = counts.reduce((a, [, n]) => a + n, 0);
  if (total === (ringRefusalsLogged.get(ring) ?? 0)) return;
  ringRefusalsLogged.set(ring, total);
  log(`[ring] refused ${total} call${total === 1 ? '' : 's'} so far (${counts.map(([k, n]) => `${k} ${n}`).join(', ')})`);
}

export async function runWorker(o: WorkerOptions): Promise<void> {
  const workerId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const subj = subjects(o.job);
  const auth = new ControlAuth(o.secret, o.job, workerId);
  const bus = await Bus.connect({ ...o.bus, name: `ringtune-worker-${workerId}` }, auth, o.log);
  bus.onReject = (reason) => o.events?.rejected?.(reason);
  o.events?.nats?.(bus.nc);
  let phase: WorkerPhase = 'joining';
  let rank = -1;
  let runId = '';
  let step = 0;
  // Heartbeats come from their own thread (heartbeat-link.ts) once the run is assigned: compute on
  // this thread can block for longer than any heartbeat timeout.
  const beats = await HeartbeatLink.start({ bus: o.bus, secret: o.secret, job: o.job, workerId, log: o.log }).catch(async (err) => {
    await bus.close();
    throw err;
  });
  const setPhase = (p: WorkerPhase) => { phase = p; beats.setPhase(p); o.events?.phase?.(p); };
  const advertise = o.advertise ?? `${o.ringHost === '0.0.0.0' ? '127.0.0.1' : o.ringHost}:${o.ringPort}`;

  const timers: NodeJS.Timeout[] = [];
  let ring: GrpcRing | undefined;
  let abortReason: string | undefined;
  const controls: Array<(c: ControlMessages['Control']) => void> = [];
  // One Control subscription (the bus refuses a second copy of a message as a replay): while joining it
  // keeps the Aborts it hears (authenticated by the bus), and one ends the join; assigned, the run's
  // handler takes over and first looks for an Abort of its run that came before it.
  const heardAborts: Array<{ runId: string; sender: string; reason: string }> = [];
  let onJoinAbort: ((reason: string) => void) | undefined;
  let onControl = (c: ControlMessages['Control'], meta: MessageMeta) => {
    if (!c.abort) return;
    if (heardAborts.length < 16) heardAborts.push({ runId: c.runId, sender: meta.sender, reason: c.abort.reason });
    onJoinAbort?.(`${meta.sender} aborted run ${c.runId} of job ${o.job} while this worker was joining: ${c.abort.reason}`);
  };
  bus.subscribe(subj.control, 'Control', (c, meta) => onControl(c, meta));
  // A subscription NATS refuses (this worker's NATS user lacks the permission): nothing on it would ever
  // be heard, so the join or the run ends with the reason instead of waiting out a timeout.
  bus.onSubscriptionError = (subject, err) => {
    const reason = `NATS refused this worker's subscription to ${subject} (${err.message}): its NATS user may not subscribe to it (docs/deploy.md, "NATS permissions per role")`;
    if (phase === 'joining' && onJoinAbort) return onJoinAbort(reason);
    if (!abortReason) abortHere(reason);
  };
  /** Ends the run on this rank for `reason` as an Abort from the coordinator would: the ring closes, waiters get it. */
  const abortHere = (reason: string) => {
    abortReason = reason;
    void ring?.close();
    for (const f of controls.splice(0)) f({ runId, abort: { reason, rank: -1, lastStep: step } });
  };
  let onJoinStop: (() => void) | undefined;
  /** E4, set once assigned: true when `err` ends the run for this worker as a leave (it says Leave{left}). */
  let hasLeft: ((err: unknown) => boolean) | undefined;

  try {
    let coordinator = '';
    const assignment = await new Promise<ControlMessages['Assignment']>((resolve, reject) => {
      // Nothing to save yet: a signal or the job's Abort ends the join at once.
      onJoinStop = () => reject(new StoppedWhileJoining(`${String(o.stop?.reason ?? 'stopped')} while joining job ${o.job}: exiting (nothing to save)`));
      if (o.stop?.aborted) return onJoinStop();
      o.stop?.addEventListener('abort', onJoinStop, { once: true });
      onJoinAbort = (reason) => reject(new WorkerAbortedError(reason));
      bus.subscribe(subj.worker(workerId), 'Assignment', (a, meta) => {
        if (phase !== 'joining' || a.workerId !== workerId) return;
        if (a.refused) return reject(new WorkerRefusedError(`the coordinator of job ${o.job} refused this worker: ${a.refused}`));
        const problem = assignmentProblem(a);
        if (problem) return bus.countRejected('invalid', subj.worker(workerId), problem);
        coordinator = meta.sender;
        resolve(a);
      });
      const join = () => bus.publish(subj.join, 'Join', {
        workerId, ringAddress: advertise, backend: o.backend.name, rankHint: o.rankHint, pid: process.pid, host: hostname(), metricsPort: o.metricsPort,
      });
      join();
      timers.push(setInterval(() => { if (phase === 'joining') join(); }, 1000));
    });
    o.stop?.removeEventListener('abort', onJoinStop!);
    onJoinAbort = undefined;
    runId = assignment.runId;
    rank = assignment.rank;
    o.events?.assigned?.(rank);
    let job = JSON.parse(assignment.compiledJobJson) as CompiledJob;
    if (o.threads === undefined && typeof job.threads === 'number') {
      await setThreads(job.threads);
      if (o.backend.name === 'native') o.log(`[worker ${workerId}] native engine: ${job.threads} thread${job.threads > 1 ? 's' : ''} (the job's threads)`);
    }
    beats.assign(rank, { runId, coordinator, intervalMs: job.cluster.heartbeatIntervalMs, abortKillMs: Math.max(10_000, 2 * job.cluster.heartbeatTimeoutMs) });
    const activity = beats.activity;
    // Reports are re-sent until acknowledged: a NATS hiccup costs a re-send, not the job.
    const reports = new Resender(job.cluster.heartbeatIntervalMs * 2);
    timers.push(setInterval(() => reports.tick(), job.cluster.heartbeatIntervalMs));
    // The coordinator's liveness, from its Control messages: without it a worker would wait forever.
    // The heartbeat thread hears the coordinator even while this thread is blocked (activity.coordinatorSeenMs):
    // after a long kernel this thread's timers run before its queued messages, and must not take that for silence.
    let coordinatorSeen = wallMs();
    // Elastic (docs/reliability.md): the ring epoch and world this rank trains in, and the newest re-form asked for.
    const elastic = job.elastic.onLoss !== 'fail';
    const recoveryMs = job.cluster.coordinatorRecoveryMs;
    let waitingForCoordinator = false;
    let epoch = assignment.epoch ?? 0;
    activity.epoch = epoch;
    let worldSize = assignment.worldSize;
    let reformAsk: ControlMessages['Control']['reform'];
    let stopAsked = false;
    /** E4: why this worker leaves the run (its signal), once it asked to. */
    let leaving: string | undefined;
    bus.onConnection = (up) => { if (up) coordinatorSeen = wallMs(); }; // nobody could be heard during the outage
    const coordinatorGone = () => {
      const silentMs = wallMs() - Math.max(coordinatorSeen, activity.coordinatorSeenMs);
      if (phase !== 'loading' && phase !== 'training') return;
      const limit = job.cluster.heartbeatTimeoutMs * 2;
      const down = bus.disconnectedMs;
      if (abortReason || (down > 0 ? down <= limit : silentMs <= limit)) return;
      if (down === 0 && silentMs <= limit + recoveryMs) {
        // Coordinator restart: training goes on over the ring; a restarted coordinator's Control.recover takes over.
        if (!waitingForCoordinator) o.log(`[worker ${workerId}] rank ${rank}: the coordinator has been silent for ${Math.round(silentMs)} ms; ` +
          `training on and waiting up to ${recoveryMs} ms (cluster.coordinator_recovery_ms) for a restarted one (ringtune coordinator --resume-if-present)`);
        waitingForCoordinator = true;
        return;
      }
      abortHere(down > 0
        ? `lost the NATS connection ${Math.round(down)} ms ago (longer than twice cluster.heartbeat_timeout_ms): NATS is down or unreachable`
        : recoveryMs > 0
          ? `the coordinator has been silent for ${Math.round(silentMs)} ms and no restarted coordinator recovered run ${runId} within cluster.coordinator_recovery_ms ${recoveryMs} ` +
            '(start `ringtune coordinator JOB --resume-if-present` with the job secret to recover a run)'
          : `the coordinator has been silent for ${Math.round(silentMs)} ms (it exited or lost NATS)`);
    };
    timers.push(setInterval(coordinatorGone, job.cluster.heartbeatIntervalMs));
    onControl = (c, meta) => {
      if (c.runId !== runId) return;
      if (meta.sender !== coordinator) {
        // A restarted coordinator: the bus verified its MAC (it holds the job secret), it names this run,
        // and its epoch is above any this rank knows (an older coordinator's late Recover is not).
        const known = Math.max(epoch, reformAsk?.epoch ?? 0);
        if (!c.recover || recoveryMs === 0 || c.recover.epoch <= known) {
          return bus.countRejected('invalid', subj.control, `Control of run ${runId} from ${meta.sender}, not its coordinator ${coordinator}`);
        }
        o.log(`[worker ${workerId}] rank ${rank}: coordinator ${meta.sender} recovers run ${runId} (${c.recover.reason}); ` +
          `it replaces ${coordinator}, silent for ${Math.round(wallMs() - Math.max(coordinatorSeen, activity.coordinatorSeenMs))} ms`);
        coordinator = meta.sender;
        beats.coordinator(meta.sender);
        reports.resendAll();
      }
      coordinatorSeen = wallMs();
      waitingForCoordinator = false;
      if (c.alive) {
        reports.ackThrough('step', c.alive.step);
        reports.ackThrough('ckpt', c.alive.checkpointStep ?? 0);
      }
      if (c.start) reports.ack('ready');
      // E4: the coordinator answered this worker's Leave (a boundary to leave at, the whole run stops, or it ends).
      if ((c.reform && c.reform.epoch > epoch) || c.stop || c.abort) reports.ack('leave');
      if (c.stop && !stopAsked) {
        stopAsked = true;
        o.log(`[worker ${workerId}] the coordinator asks to stop: stopping after the current step`);
      }
      if (c.evalDecision) reports.ack(`eval:${c.evalDecision.step}`);
      if (c.shutdown) reports.ack('done');
      if (c.abort) {
        abortReason = `aborted by the coordinator: ${c.abort.reason}`;
        void ring?.close();
      }
      if (c.recover && c.recover.epoch > (reformAsk?.epoch ?? epoch)) {
        // Coordinator restart: answered as a loss's re-form (the step in flight is abandoned). A rank lost
        // during the restarted coordinator's first round is dropped by its next Recover, as by a Reform.
        reformAsk = { epoch: c.recover.epoch, reason: c.recover.reason, dropped: c.recover.dropped ?? [], atBoundary: false };
        activity.reformEpoch = reformAsk.epoch;
        if (reformAsk.dropped.includes(workerId)) abortReason = `dropped from the run by the coordinator (re-form ${reformAsk.epoch}: ${reformAsk.reason})`;
        void ring?.close();
      }
      if (c.reform && c.reform.epoch > (reformAsk?.epoch ?? epoch)) {
        // E1/E2 (coordinator.ts): the newest re-form wins; a loss abandons the collective in flight now.
        reformAsk = c.reform;
        activity.reformEpoch = c.reform.epoch;
        if (c.reform.dropped.includes(workerId)) {
          abortReason = `${leaving ? 'left' : 'dropped from'} the run by the coordinator (re-form ${c.reform.epoch}: ${c.reform.reason})`;
          void ring?.close();
        } else if (!c.reform.atBoundary) {
          void ring?.close();
          // Reports the coordinator has not acknowledged (lost in a NATS outage, waiting out a backoff)
          // go now: its plan waits briefly for steps of which no report came (elastic.ts R5).
          reports.resendAll();
        }
      }
      for (const f of controls.splice(0)) f(c);
    };
    // A Control of this run that came while the subscription above was not yet there (an Abort is sent once).
    const missed = heardAborts.find((a) => a.runId === runId && a.sender === coordinator);
    if (missed) abortReason = `aborted by the coordinator: ${missed.reason}`;
    // E4: a signal after the assignment. Under shrink | wait this worker leaves and the run goes on;
    // under fail (or once the coordinator asked every rank to stop) it votes to stop the run (stopVote).
    const onStopSignal = () => {
      if (!elastic || stopAsked || leaving || abortReason || (phase !== 'loading' && phase !== 'training')) return;
      leaving = String(o.stop?.reason ?? 'SIGTERM');
      o.log(`[worker ${workerId}] rank ${rank}: ${leaving}: leaving run ${runId} at the next step boundary (elastic.on_loss ${job.elastic.onLoss}); the others re-form without this worker`);
      // Re-sent with the rank and epoch of the moment (a standby gets its rank from a plan).
      reports.send('leave', () => bus.publish(subj.leave, 'Leave', { runId, workerId, rank, epoch, step, reason: leaving!, left: false }));
      for (const f of controls.splice(0)) f({ runId }); // wakes a wait for a plan: this worker leaves from there
    };
    hasLeft = (err) => {
      if (!leaving || !(err instanceof LeftRun || reformAsk?.dropped.includes(workerId))) return false;
      // The others re-form without this worker now (no heartbeat timeout); its pod may be replaced.
      reports.ack('leave');
      bus.publish(subj.leave, 'Leave', { runId, workerId, rank, epoch, step, reason: leaving, left: true });
      setPhase('done');
      o.events?.left?.();
      o.log(`[worker ${workerId}] rank ${rank}: left run ${runId} after step ${step} (${leaving})`);
      return true;
    };
    if (o.stop?.aborted) onStopSignal();
    else o.stop?.addEventListener('abort', onStopSignal, { once: true });
    /** A non-boundary re-form is pending: the step or evaluation in flight is abandoned. */
    const abandoning = () => !!reformAsk && !reformAsk.atBoundary;
    const nextControl = (want: (c: ControlMessages['Control']) => boolean, interruptible = false) =>
      new Promise<ControlMessages['Control']>((resolve, reject) => {
        const wait = (c: ControlMessages['Control']) => {
          if (c.abort) reject(new WorkerAbortedError(abortReason!));
          else if (want(c)) resolve(c);
          else if (interruptible && abandoning()) reject(new ReformInterrupt(reformAsk!.reason));
          else controls.push(wait);
        };
        if (abortReason) reject(new WorkerAbortedError(abortReason));
        else if (interruptible && abandoning()) reject(new ReformInterrupt(reformAsk!.reason));
        else controls.push(wait);
      });
    /** Resolves true once `heard()` holds (checked on every Control), false after `ms`. */
    const heardWithin = (ms: number, heard: () => boolean) => heard() ? Promise.resolve(true) : new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(heard()), ms);
      const wait = () => {
        if (heard()) {
          clearTimeout(timer);
          resolve(true);
        } else {
          controls.push(wait);
        }
      };
      controls.push(wait);
    });

    /**
     * E3: abandon the ring (closing it frees the port and fails anything still in flight), tell the
     * coordinator how far this rank got, and wait for the plan of the newest re-form.
     */
    const reportForReform = async (): Promise<NonNullable<ControlMessages['Control']['plan']>> => {
      activity.begin('waiting');
      for (;;) {
        // E4: a leaving worker does not join the next ring; it leaves from here (the ring is given up).
        if (leaving) throw new LeftRun(`left after step ${step} (re-form ${reformAsk?.epoch ?? epoch})`);
        const want = reformAsk!.epoch;
        await ring?.close().catch(() => {});
        ring = undefined;
        reports.dropKind('eval'); // an evaluation of the abandoned epoch is never decided
        const report = { runId, workerId, epoch: want, appliedStep: step, paramHash: paramHash(state.flat.params), ringAddress: advertise };
        o.log(`[worker ${workerId}] re-form ${want} (${reformAsk!.reason}): applied step ${step}, waiting for the plan`);
        reports.send(`reform:${want}`, () => bus.publish(subj.reform, 'ReformReport', report));
        const c = await nextControl((x) => x.plan?.epoch === want || (x.reform?.epoch ?? 0) > want || (reformAsk?.epoch ?? 0) > want || !!leaving);
        reports.ack(`reform:${want}`);
        if (c.plan?.epoch === want) return c.plan;
      }
    };

    /** E3: the ring of the plan's epoch; the state (parameters, optimizer, step) from its source rank. */
    const joinRing = async (p: NonNullable<ControlMessages['Control']['plan']>): Promise<void> => {
      const me = p.peers.findIndex((x) => x.workerId === workerId);
      if (me < 0) throw new WorkerRefusedError(`the coordinator re-formed the ring (epoch ${p.epoch}) without this worker`);
      [rank, worldSize, epoch] = [me, p.peers.length, p.epoch];
      if (reformAsk && reformAsk.epoch <= epoch) reformAsk = undefined;
      activity.rank = rank;
      activity.epoch = epoch;
      o.events?.assigned?.(rank);
      await ring?.close().catch(() => {});
      ring = await createRing(epoch, rank, worldSize);
      o.events?.ring?.(ring);
      await ring.connect(p.peers.map((x) => x.ringAddress));
      const buf = packState(state.flat, state.optimizer, step);
      await ring.broadcast(buf, { step: p.targetStep, root: p.sourceRank, timeoutMs: job.cluster.collectiveTimeoutMs });
      step = unpackState(buf, state.flat, state.optimizer);
      if (step !== p.targetStep) throw new RingtuneError(`re-form ${epoch}: rank ${p.sourceRank} sent the state of step ${step}, the plan says ${p.targetStep}`);
      state.startStep = step;
      activity.step = step;
      o.log(`[worker ${workerId}] ring epoch ${epoch}: rank ${rank}/${worldSize}, from step ${step}`);
    };

    setPhase('loading');
    activity.begin('loading');
    o.log(`[worker ${workerId}] ${assignment.standby ? `joins the running run ${runId} (standby until the next re-form)` : `rank ${rank}/${assignment.worldSize}, run ${runId}`}: loading`);
    // A hub model the coordinator could not hand over as a path (a remote worker): fetched into this machine's cache.
    job = await resolveJobModel(job, o.hub ?? hubOptionsFromEnv());
    const state = await prepareWorkerState(job, assignment.resumeFrom || undefined);
    const [host, port] = [advertise.slice(0, advertise.lastIndexOf(':')), Number(advertise.slice(advertise.lastIndexOf(':') + 1))];
    const createRing = (at: number, r: number, world: number) => withPortRetry(() => GrpcRing.create({
      jobId: `${job.name}/${runId}`, rank: r, worldSize: world, token: o.ringToken || auth.ringToken(runId), epoch: at,
      listenHost: o.ringHost, listenPort: o.ringPort || port, advertiseHost: host, tls: ringTls(job),
      connectTimeoutMs: job.cluster.joinTimeoutMs, connections: job.cluster.ringConnections,
    }));
    const readyMsg = {
      runId, rank, trainExamples: state.data.train.length, evalExamples: state.data.eval.length, startStep: state.startStep, totalSteps: state.plan.totalSteps,
      labels: state.labels ?? [], standby: !!assignment.standby, workerId,
    };
    let plan: ControlMessages['Control']['plan'];
    if (assignment.standby) {
      // E2 (coordinator.ts): loaded; the plan that takes this worker in acknowledges Ready.
      reports.send('ready', () => bus.publish(subj.ready, 'Ready', readyMsg));
      activity.begin('waiting');
      plan = (await nextControl((c) => !!c.plan?.peers.some((p) => p.workerId === workerId) || !!leaving)).plan;
      // E4: a standby that got SIGTERM before a plan took it in holds nothing the run needs.
      if (leaving && !plan?.peers.some((p) => p.workerId === workerId)) throw new LeftRun('left before entering the ring');
      reports.ack('ready');
    } else {
      ring = await createRing(epoch, rank, assignment.worldSize);
      o.events?.ring?.(ring);
      await ring.connect(assignment.peers.map((p) => p.ringAddress));
      if (ring.striping.connections > 1) o.log(`[worker ${workerId}] rank ${rank}: ring of ${ring.striping.connections} connections per link (one thread each; cluster.ring_connections)`);
      reports.send('ready', () => bus.publish(subj.ready, 'Ready', readyMsg));
      activity.begin('waiting');
      const start = await nextControl((c) => !!c.start);
      step = start.start!.startStep;
    }
    timers.push(setInterval(() => { if (ring) logRingRefusals(ring, o.log); }, 10_000));
    activity.step = step;
    setPhase('training');
    let outcome: StepsOutcome | undefined;
    let evaluateFirst = false;
    for (;;) {
      try {
        if (plan) {
          const p = plan;
          plan = undefined;
          await joinRing(p);
          evaluateFirst = !!p.evaluate;
        }
        outcome = await runSteps(state, {
          job, rank, worldSize, runId, ring: ring!, bus, subj, reports, epoch,
          // A leaving worker's own signal is not a vote to stop the run (E4).
          stopVote: () => !!((o.stop?.aborted && !leaving) || stopAsked),
          reformVote: () => !!reformAsk?.atBoundary,
          waitForDecision: (s) => nextControl((c) => c.evalDecision?.step === s, true).then((c) => c.evalDecision!),
          onStep: (s) => { step = s; activity.step = s; },
          activity: (what, at, micro) => activity.begin(what, at, micro),
          events: o.events,
          isAborted: () => abortReason,
          traceFile: o.traceFile,
          evaluateFirst,
        });
        // E4: the boundary the coordinator set for this worker's Leave (or any boundary): leave there.
        if (outcome.votedOut && leaving) throw new LeftRun(`left after step ${step}`);
        // Stopped by the others' vote without having heard why: a re-form whose Control this rank missed?
        if (outcome.stopped && !o.stop?.aborted && !stopAsked && !reformAsk) await heardWithin(1500, () => !!reformAsk || stopAsked);
        if (!outcome.votedOut && !(outcome.stopped && reformAsk && !stopAsked && !o.stop?.aborted)) break;
      } catch (err) {
        if (err instanceof LeftRun || abortReason || !(elastic || reformAsk)) throw err;
        if (!reformAsk) {
          // E1: the ring broke under us. Say so (naming whom it blames) and wait for the coordinator's re-form.
          const blamed = (err as { rank?: unknown }).rank;
          const lostRank = typeof blamed === 'number' && blamed !== rank ? blamed : -1;
          o.log(`[worker ${workerId}] rank ${rank}: ring epoch ${epoch} broke after step ${step} (${(err as Error).message}); waiting for the coordinator to re-form it`);
          bus.publish(subj.failed, 'Failed', { runId, rank, workerId, error: (err as Error).message, step, lostRank, survivor: true, epoch });
          // Its coordinator may be dead too: a restarted one may re-form it (coordinatorGone ends the wait then).
          const waitMs = 2 * job.cluster.heartbeatTimeoutMs + 2000 + recoveryMs;
          if (!(await heardWithin(waitMs, () => !!reformAsk || !!abortReason || !!leaving)) || abortReason) throw err;
        }
      }
      plan = await reportForReform();
    }
    const doneMsg = { runId, rank, step, finalModelDir: outcome.finalModelDir ?? '', stopped: !!outcome.stopped, checkpoint: outcome.stopped?.checkpoint ?? '' };
    reports.send('done', () => bus.publish(subj.done, 'Done', doneMsg));
    activity.begin('idle');
    setPhase('done');
    o.log(outcome.stopped
      ? `[worker ${workerId}] rank ${rank}: stopped on request after step ${step}${outcome.stopped.checkpoint ? `; checkpoint ${outcome.stopped.checkpoint}` : ''}`
      : `[worker ${workerId}] rank ${rank}: done at step ${step}`);
    // Wait (bounded) for Shutdown so a lost Done is re-sent; the work is saved whatever happens.
    const waitMs = job.cluster.heartbeatTimeoutMs * 2;
    const shutdown = await Promise.race([nextControl((c) => !!c.shutdown).then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), waitMs))]);
    if (!shutdown) o.log(`[worker ${workerId}] rank ${rank}: no Shutdown from the coordinator within ${waitMs} ms; exiting (the run's outputs are written)`);
  } catch (err) {
    if (err instanceof StoppedWhileJoining) {
      o.log(`[worker ${workerId}] ${err.message}`);
      return;
    }
    if (hasLeft?.(err)) return;
    setPhase('failed');
    const e = abortReason ? new WorkerAbortedError(abortReason, { cause: err }) : err;
    // Ring errors (PeerLostError, CollectiveTimeoutError) name the rank at fault in `rank`.
    const blamed = (err as { rank?: unknown }).rank;
    const lostRank = typeof blamed === 'number' && blamed !== rank ? blamed : -1;
    bus.publish(subj.failed, 'Failed', { runId, rank, workerId, error: (e as Error).message, step, lostRank });
    throw e;
  } finally {
    for (const t of timers) clearInterval(t);
    await Promise.all([beats.close(), ring?.close().catch(() => {}), bus.flush().catch(() => {}).then(() => bus.close())]);
  }
}
