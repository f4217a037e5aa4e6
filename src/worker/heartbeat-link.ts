/**
 * The compute thread's side of the heartbeat thread (heartbeat-thread.ts): starts it, tells it about
 * phase changes, and stops it after its last heartbeat. The activity record is shared memory the
 * compute thread writes as it works.
 */
import { Worker } from 'node:worker_threads';
import type { WorkerPhase } from '../control/phases.ts';
import { RingtuneError } from '../errors.ts';
import { SharedActivity } from './activity.ts';
import type { FromHeartbeatThread, HeartbeatAssignment, HeartbeatThreadData, ToHeartbeatThread } from './heartbeat-thread.ts';

export type HeartbeatLinkOptions = Omit<HeartbeatThreadData, 'entry' | 'shared'> & { log: (line: string) => void };

export class HeartbeatLink {
  private constructor(readonly activity: SharedActivity, private readonly thread: Worker) {}

  /**
   * Resolves once the thread is connected to NATS. Started before the worker joins: loading the thread
   * takes about a second, which must not eat into the heartbeat timeout that starts at assignment.
   */
  static async start(o: HeartbeatLinkOptions): Promise<HeartbeatLink> {
    const { log, ...rest } = o;
    const activity = new SharedActivity();
    const data: HeartbeatThreadData = { ...rest, entry: new URL('./heartbeat-thread.ts', import.meta.url).href, shared: activity.buffer };
    const thread = new Worker(new URL('./thread-boot.mjs', import.meta.url), { workerData: data, name: 'ringtune-heartbeat' });
    const link = new HeartbeatLink(activity, thread);
    await new Promise<void>((resolve, reject) => {
      thread.on('message', (m: FromHeartbeatThread) => {
        if ('log' in m) log(m.log);
        else if ('ready' in m) resolve();
      });
      thread.once('error', (err) => reject(new RingtuneError(`the heartbeat thread failed: ${err.message}`, { cause: err })));
      thread.once('exit', (code) => reject(new RingtuneError(`the heartbeat thread exited (code ${code}) before it was ready`)));
    });
    thread.on('error', (err) => log(`[worker] heartbeat thread error: ${err.message}`));
    return link;
  }

  /** Heartbeats start now, as rank `rank` of the run. */
  assign(rank: number, a: HeartbeatAssignment): void {
    this.activity.rank = rank;
    this.thread.postMessage({ assign: a } satisfies ToHeartbeatThread);
  }

  /** A restarted coordinator recovered the run: Control from `sender` is its coordinator's from now on. */
  coordinator(sender: string): void {
    this.thread.postMessage({ coordinator: sender } satisfies ToHeartbeatThread);
  }

  /** Sets the phase and sends a heartbeat at once (the coordinator sees transitions without waiting an interval). */
  setPhase(p: WorkerPhase): void {
    this.activity.phase = p;
    this.thread.postMessage('beat' satisfies ToHeartbeatThread);
  }

  /** Last heartbeat (the phase as it is now), then the thread ends; bounded so an exit is never held up. */
  async close(timeoutMs = 1500): Promise<void> {
    this.activity.finished = true;
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) => {
      this.thread.on('message', (m: FromHeartbeatThread) => { if ('closed' in m) resolve(); });
      this.thread.once('exit', () => resolve());
    });
    this.thread.postMessage('close' satisfies ToHeartbeatThread);
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.thread.terminate();
  }
}
