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
bus.subscribe(subj.control, 'Control', (c, meta) => {
  if (!a || c.runId !== a.runId || meta.sender !== a.coordinator) return; // the main thread counts strangers
  act.coordinatorSeenMs = wallMs();
  if (c.abort && !killTimer) {
    killTimer = setTimeout(() => {
      if (act.finished) return;
      const { activity, activityMs } = act.describe();
      // The main thread, which prints log messages (and a thread's process.stderr), is blocked: write fd 2 directly.
      writeSync(2, `[worker ${d.workerId}] the run was aborted (${c.abort!.reason}) and the compute thread is still busy ` +
        `(${activity}, ${activityMs} ms) ${a!.abortKillMs} ms later: ending the process\n`);
      process.kill(process.pid, 'SIGKILL');
    }, a.abortKillMs);
    killTimer.unref();
  }
});
port.on('message', (m: ToHeartbeatThread) => {
  if (typeof m === 'object' && 'coordinator' in m) {
    if (a) a = { ...a, coordinator: m.coordinator };
    return;
  }
  if (typeof m === 'object') {
    a = m.assign;
    timer = setInterval(beat, a.intervalMs);
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
