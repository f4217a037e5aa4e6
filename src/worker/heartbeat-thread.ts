/**
 * The heartbeat thread of a worker: its own NATS connection, its own event loop, nothing else to do.
 * Training runs kernels on the main thread that hold it for as long as a micro-batch or an
 * evaluation pass takes (seconds to minutes on real models); heartbeats sent from there would make
 * "slow" look like "gone". From here they keep their interval whatever compute does, and carry what
 * the compute thread is doing and for how long (activity.ts, shared memory), so the coordinator can
 * tell a live rank stuck in a kernel from a dead one.
 * It also watches the coordinator for the main thread (the last time a Control message came, in
 * shared memory: a main thread that was blocked must not mistake its own deafness for the
 * coordinator's silence), and when the run is aborted while the main thread stays blocked past
 * `abortKillMs`, ends the process: an aborted run must not keep a machine busy until a kernel returns.
 * That holds for an Abort that arrives before the assignment reaches this thread too.
 */
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ControlAuth } from '../control/auth.ts';
import { Bus, type BusOptions } from '../control/bus.ts';
import { subjects } from '../control/subjects.ts';
import { SharedActivity, wallMs } from './activity.ts';

export interface HeartbeatThreadData {
  entry: string;
  bus: BusOptions;
  secret: string;
  job: string;
  workerId: string;
  shared: SharedArrayBuffer;
}

/** What the assignment brings; heartbeats start with it. */
export interface HeartbeatAssignment {
  runId: string;
  /** The assigning coordinator's sender id: Control from anyone else is ignored. */
  coordinator: string;
  intervalMs: number;
  abortKillMs: number;
}

/**
 * Main -> thread: the assignment (start beating), a new coordinator (a restarted one recovered the run:
 * its sender id), beat now (a phase changed), or say the last beat and close. Thread -> main: ready
 * (connected), closed, log lines.
 */
export type ToHeartbeatThread = { assign: HeartbeatAssignment } | { coordinator: string } | 'beat' | 'close';
export type FromHeartbeatThread = { ready: true } | { closed: true } | { log: string };

const d = workerData as HeartbeatThreadData;
const port = parentPort!;
const act = new SharedActivity(d.shared);
const log = (line: string) => port.postMessage({ log: line } satisfies FromHeartbeatThread);
const subj = subjects(d.job);
const bus = await Bus.connect({ ...d.bus, name: `ringtune-worker-${d.workerId}-heartbeat` }, new ControlAuth(d.secret, d.job, d.workerId), log);

let a: HeartbeatAssignment | undefined;
const beat = () => {
  if (!a) return;
  const { activity, activityMs } = act.describe();
  bus.publish(subj.heartbeat, 'Heartbeat', {
    workerId: d.workerId, rank: act.rank, phase: act.phase, step: act.step, runId: a.runId, activity, activityMs, epoch: act.epoch, reformEpoch: act.reformEpoch,
  });
};
let timer: NodeJS.Timeout | undefined;
let killTimer: NodeJS.Timeout | undefined;
/** The run was aborted: if the compute thread is still busy `abortKillMs` later, end the process. */
const armKill = (reason: string) => {
  if (killTimer || !a) return;
  const { abortKillMs } = a;
  killTimer = setTimeout(() => {
    if (act.finished) return;
    const { activity, activityMs } = act.describe();
    // The main thread, which prints log messages (and a thread's process.stderr), is blocked: write fd 2 directly.
    writeSync(2, `[worker ${d.workerId}] the run was aborted (${reason}) and the compute thread is still busy ` +
      `(${activity}, ${activityMs} ms) ${abortKillMs} ms later: ending the process\n`);
    process.kill(process.pid, 'SIGKILL');
  }, abortKillMs);
  killTimer.unref();
};
/**
 * Aborts heard before the assignment reached this thread. The coordinator sends Abort once; it can
 * overtake the main thread's `assign` (posted just before the main thread blocks in loading), and
 * dropping it left an aborted worker loading for minutes. Kept (authenticated by the bus, a few at
 * most) until the assignment says which run and coordinator they must name.
 */
const early: Array<{ runId: string; sender: string; reason: string }> = [];
bus.subscribe(subj.control, 'Control', (c, meta) => {
  if (!a) {
    if (c.abort && early.length < 16) early.push({ runId: c.runId, sender: meta.sender, reason: c.abort.reason });
    return;
  }
  if (c.runId !== a.runId || meta.sender !== a.coordinator) return; // the main thread counts strangers
  act.coordinatorSeenMs = wallMs();
  if (c.abort) armKill(c.abort.reason);
});
port.on('message', (m: ToHeartbeatThread) => {
  if (typeof m === 'object' && 'coordinator' in m) {
    if (a) a = { ...a, coordinator: m.coordinator };
    return;
  }
  if (typeof m === 'object') {
    a = m.assign;
    timer = setInterval(beat, a.intervalMs);
    const before = early.splice(0).find((e) => e.runId === a!.runId && e.sender === a!.coordinator);
    if (before) armKill(before.reason);
    return beat();
  }
  if (m === 'beat') return beat();
  clearInterval(timer);
  clearTimeout(killTimer);
  beat();
  // The last heartbeat out (bounded: NATS may be down), then close without a drain: nothing here waits on replies.
  const flushed = Promise.race([bus.flush().catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
  void flushed.then(() => bus.nc.close()).catch(() => {}).finally(() => {
    port.postMessage({ closed: true } satisfies FromHeartbeatThread);
    port.close();
  });
});
port.postMessage({ ready: true } satisfies FromHeartbeatThread);
