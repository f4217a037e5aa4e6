/**
 * Coordinator restart (docs/reliability.md, "Coordinator restart"): how a coordinator started with
 * --resume-if-present finds the run a killed coordinator left, and what it starts from.
 *   R1. session-file.ts names the killed session (run id, ring epoch, members, totals). No file: no
 *       recovery, the start is as today's (resume from the latest checkpoint, or fresh).
 *   R2. Listen to the job's heartbeats for a few intervals: workers still training that run (their
 *       heartbeats name its run id) are alive. None: no recovery (everything restarted; the workers
 *       of the killed session are gone or will abort on their own).
 *   R3. The run's record continues as the killed coordinator left it: metrics.jsonl keeps every line
 *       (workers never un-apply a step, so nothing recorded is re-run), early stopping replays its
 *       evaluations, the checkpoint step is the latest checkpoint's. "Recorded through N" means every
 *       train step 1..N has its line: a step above a hole (its reports were lost, e.g. in a NATS
 *       outage, and the killed coordinator never got the re-sends) does not count, so the workers'
 *       re-sent reports of the hole are taken (R5) and their lines inserted in step order.
 * Then Coordinator.recover (coordinator.ts R4-R5) re-forms the ring with the live workers.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { ControlMessages } from '../control/bus.ts';
import type { EvalResult } from '../eval/eval-state.ts';
import { RunRecord } from '../run/record.ts';
import { latestCheckpoint, readTrainerState, type TrainerState } from '../run/trainer-state.ts';
import type { CoordinatorSession } from './session-file.ts';

/** A worker of the killed session, as its heartbeats describe it. */
export interface LiveWorker {
  workerId: string;
  /** Its rank in ring epoch `epoch`. */
  rank: number;
  step: number;
  epoch: number;
  /** The newest re-form it was asked for (0: none). */
  reformEpoch: number;
}

export interface RecoveredRun {
  session: CoordinatorSession;
  /** In rank order. */
  live: LiveWorker[];
  /** Every train step 1..recordedThrough has its line in metrics.jsonl (the highest such step). */
  recordedThrough: number;
  /** Train steps above recordedThrough that have their line too (above a hole), ascending. */
  recordedAbove: number[];
  lastCheckpointStep: number;
}

/**
 * R2: collects heartbeats of `session`'s run for up to `windowMs` (less once every member was heard).
 * `listen` installs the handler on the heartbeat subscription (one per bus: the control plane refuses
 * a second copy of a message as a replay).
 */
export async function findLiveWorkers(
  session: CoordinatorSession, windowMs: number, listen: (handler: ((h: ControlMessages['Heartbeat'], sender: string) => void) | undefined) => void,
): Promise<LiveWorker[]> {
  const heard = new Map<string, LiveWorker>();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, windowMs);
    listen((h, sender) => {
      if (sender !== h.workerId || h.runId !== session.runId || h.phase !== 'training' || h.rank < 0) return;
      heard.set(h.workerId, { workerId: h.workerId, rank: h.rank, step: h.step, epoch: h.epoch ?? 0, reformEpoch: h.reformEpoch ?? 0 });
      if (session.workers.every((w) => heard.has(w))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  listen(undefined);
  return [...heard.values()].sort((a, b) => a.rank - b.rank);
}

/** R3: the run's record as the killed coordinator left it, and where it stands. */
export async function continueRecord(job: CompiledJob, session: CoordinatorSession): Promise<{ record: RunRecord; recordedThrough: number; recordedAbove: number[]; lastCheckpointStep: number }> {
  // A "resumed" state past any step keeps every line of metrics.jsonl (RunHistory.open drops only a
  // line cut short by the kill); only `step` and `earlyStopping` of it are read.
  const keepAll: TrainerState = {
    runId: session.runId, step: Number.MAX_SAFE_INTEGER, epoch: 0, stepInEpoch: 0, seed: job.training.seed,
    schedule: { name: '', peakLr: 0, warmupSteps: 0, totalSteps: session.totalSteps, minLrRatio: 0 },
  };
  const record = await RunRecord.open(job, keepAll);
  const train = new Set<number>();
  for (const line of record.history.lines) {
    if (line.type === 'train') train.add(line.step);
    if (line.type !== 'eval') continue;
    const { type: _t, step: _s, ...rest } = line;
    const result: EvalResult = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, Number(v)]));
    record.lastEval = result;
    // Early stopping decided at each of these evaluations; replaying them restores its state exactly.
    try {
      record.shouldStop(line.step, result, session.totalSteps);
    } catch { /* a metric the stopper does not watch was never decided on either */ }
  }
  const latest = await latestCheckpoint(job.checkpoint.dir).catch(() => undefined);
  const lastCheckpointStep = latest ? await readTrainerState(latest).then((s) => s.step, () => 0) : 0;
  let recordedThrough = 0;
  while (train.has(recordedThrough + 1)) recordedThrough += 1;
  const recordedAbove = [...train].filter((s) => s > recordedThrough).sort((a, b) => a - b);
  return { record, recordedThrough, recordedAbove, lastCheckpointStep };
}
