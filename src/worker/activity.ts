/**
 * What a worker's compute thread is doing, in shared memory, so the heartbeat thread
 * (heartbeat-thread.ts) can report it while the compute thread is blocked in a kernel. The compute
 * thread only writes numbers (no allocation, no message passing: a write costs nanoseconds and needs
 * no event-loop turn); the heartbeat thread reads them whenever it beats.
 *
 * Layout (Float64Array over a SharedArrayBuffer; times are epoch ms, comparable across threads):
 *   [0] phase index in WORKER_PHASES   [1] rank   [2] steps completed
 *   [3] activity code (ACTIVITIES)     [4] activity start   [5] step the activity belongs to
 *   [6] micro-batch index (1-based)    [7] micro-batches in the step
 *   [8] last time the coordinator was heard (written by the heartbeat thread)
 *   [9] 1 once the compute thread has finished (it will publish nothing more)
 *   [10] ring epoch   [11] newest re-form asked for (0: none); a restarted coordinator reads both
 * Plain (non-atomic) float64 accesses: on the 64-bit machines this runs on an aligned 8-byte access
 * does not tear, and a torn value could only garble one report, never a decision.
 */
import { WORKER_PHASES, type WorkerPhase } from '../control/phases.ts';
import { ACTIVITIES, type ActivityName } from '../train/activity.ts';

const SLOTS = 12;

/** Milliseconds since the epoch with sub-ms resolution; the same clock in every thread (performance.now() is not). */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export class SharedActivity {
  readonly buffer: SharedArrayBuffer;
  private readonly f: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * 8);
    this.f = new Float64Array(this.buffer);
    if (!buffer) {
      this.f[1] = -1;
      this.f[4] = wallMs();
      this.f[8] = wallMs();
    }
  }

  set phase(p: WorkerPhase) { this.f[0] = WORKER_PHASES.indexOf(p); }
  get phase(): WorkerPhase { return WORKER_PHASES[this.f[0]] ?? 'joining'; }
  set rank(r: number) { this.f[1] = r; }
  get rank(): number { return this.f[1]; }
  set step(s: number) { this.f[2] = s; }
  get step(): number { return this.f[2]; }

  /** Starts an activity now; `step` is the step it works on, `micro` = [index, count] inside a step. */
  begin(what: ActivityName, step = this.step, micro?: [number, number]): void {
    this.f[3] = ACTIVITIES.indexOf(what);
    this.f[4] = wallMs();
    this.f[5] = step;
    this.f[6] = micro?.[0] ?? 0;
    this.f[7] = micro?.[1] ?? 0;
  }

  /** The current activity in words, and how long it has lasted. */
  describe(now = wallMs()): { activity: string; activityMs: number } {
    const what = ACTIVITIES[this.f[3]] ?? 'idle';
    const step = this.f[5];
    const [i, n] = [this.f[6], this.f[7]];
    const inStep = what === 'compute' && n > 0 ? `step ${step + 1}: micro-batch ${i}/${n} forward+backward`
      : what === 'all-reduce' || what === 'update' ? `step ${step + 1}: ${what}`
      : what === 'evaluation' || what === 'checkpoint' ? `${what} after step ${step}`
      : what;
    return { activity: inStep, activityMs: Math.max(0, Math.round(now - this.f[4])) };
  }

  set coordinatorSeenMs(t: number) { this.f[8] = t; }
  get coordinatorSeenMs(): number { return this.f[8]; }
  set finished(v: boolean) { this.f[9] = v ? 1 : 0; }
  get finished(): boolean { return this.f[9] === 1; }
  set epoch(e: number) { this.f[10] = e; }
  get epoch(): number { return this.f[10]; }
  set reformEpoch(e: number) { this.f[11] = e; }
  get reformEpoch(): number { return this.f[11]; }
}
