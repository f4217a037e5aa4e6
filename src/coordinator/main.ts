/**
 * The coordinator process's session (protocol step 1 of coordinator.ts): the resume point or the
 * killed coordinator's run to take over (recovery.ts R1-R3), the run record, NATS, and the
 * subscriptions wired to a `Coordinator`'s handlers in protocol order, until the run ends.
 */
import { randomBytes } from 'node:crypto';
import type { CompiledJob } from '../config/compile.ts';
import { ControlAuth } from '../control/auth.ts';
import { Bus, type BusOptions, type ControlMessages, type MessageMeta } from '../control/bus.ts';
import { subjects } from '../control/subjects.ts';
import { claimCheckpointDir, newRunId } from '../run/checkpoint-dir.ts';
import { RunRecord } from '../run/record.ts';
import { Coordinator, type CoordinatorEvents, type RunSummary } from './coordinator.ts';
import { continueRecord, findLiveWorkers, type LiveWorker, type RecoveredRun } from './recovery.ts';
import { SessionFile } from './session-file.ts';

type M = ControlMessages;

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

export async function runCoordinator(o: CoordinatorOptions): Promise<RunSummary> {
  const { job } = o;
  // 1. compile (done by the caller), resume point, record, NATS, subscriptions in protocol order
  const subj = subjects(job.name);
  const auth = new ControlAuth(o.secret, job.name, `coordinator-${randomBytes(4).toString('hex')}`);
  const connect = () => Bus.connect({ ...o.bus, name: `ringtune-coordinator-${job.name}` }, auth, o.log);
  // R1-R2 (recovery.ts): a killed coordinator's session whose workers still train is taken over.
  // Only for jobs whose workers wait for a restarted coordinator (cluster.coordinator_recovery_ms > 0):
  // the others abort on their own, and a coordinator waiting for their Recover answers would fail the run.
  const sessions = o.recoverIfLive && job.cluster.coordinatorRecoveryMs > 0 ? new SessionFile(job.checkpoint.dir) : undefined;
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
      recovered = { session: killed, live, recordedThrough: at.recordedThrough, recordedAbove: at.recordedAbove, lastCheckpointStep: at.lastCheckpointStep };
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
  bus.onSubscriptionError = (subject, err) => c.fail(-1, `NATS refused the coordinator's subscription to ${subject} (${err.message}): ` +
    'its NATS user may not subscribe to it, so it cannot hear those messages (docs/deploy.md, "NATS permissions per role")');
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
  bus.subscribe(subj.leave, 'Leave', guarded((l, from) => c.onLeave(l, from))); // E4
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
