/**
 * A Coordinator driven by hand: an in-memory Outbox that records what would go on the bus, a real
 * RunRecord on a temp output dir, the events it raises, and a fake clock for liveness (the
 * membership reads `performance.now()`).
 */
import type { TestContext } from 'node:test';
import type { ControlMessages } from '../../src/control/bus.ts';
import { Coordinator, type Outbox } from '../../src/coordinator/coordinator.ts';
import type { EvalResult, EvalState } from '../../src/eval/eval-state.ts';
import { RunRecord } from '../../src/run/record.ts';
import { runJob, tempDir } from '../run/helpers.ts';

type M = ControlMessages;
export type Control = Omit<M['Control'], 'runId'>;

export const RUN = 'run-1';
export const OTHER_RUN = 'run-0';

export class MemoryOutbox implements Outbox {
  readonly controls: Control[] = [];
  readonly assignments: Array<{ to: string; a: M['Assignment'] }> = [];

  control(c: Control): void {
    this.controls.push(c);
  }

  assign(workerId: string, a: M['Assignment']): void {
    this.assignments.push({ to: workerId, a });
  }

  /** The payloads of one kind of Control, in order (`start`, `abort`, `evalDecision`, ...). */
  of<K extends keyof Control>(kind: K): Array<NonNullable<Control[K]>> {
    return this.controls.filter((c) => c[kind] !== undefined).map((c) => c[kind]!);
  }
}

/** Replaces performance.now() for the test; `advance` moves time forward. */
export function fakeClock(t: TestContext): { advance(ms: number): void } {
  let now = 1_000_000;
  t.mock.method(performance, 'now', () => now);
  return { advance: (ms) => void (now += ms) };
}

export interface Setup {
  workers?: number;
  cluster?: Record<string, unknown>;
  eval?: Record<string, unknown>;
  /** How long NATS has been down, read at every tick (mutable: tests simulate an outage). */
  nats?: { downMs: number };
}

export async function coordinator(t: TestContext, o: Setup = {}) {
  const dir = await tempDir(t, 'ringtune-coordinator-');
  const job = runJob(dir, { cluster: { workers: o.workers ?? 2, ...o.cluster }, eval: o.eval });
  const record = await RunRecord.open(job);
  const outbox = new MemoryOutbox();
  const seen = {
    phases: [] as string[], steps: [] as number[], hashChecks: [] as boolean[], evals: [] as Array<[number, EvalResult]>, checkpoints: [] as number[],
  };
  const logs: string[] = [];
  const c = new Coordinator({
    job, runId: RUN, record, outbox, log: (l) => logs.push(l), natsDownMs: o.nats && (() => o.nats!.downMs),
    events: {
      phase: (p) => seen.phases.push(p), step: (s) => seen.steps.push(s.step), hashCheck: (ok) => seen.hashChecks.push(ok),
      eval: (step, r) => seen.evals.push([step, r]), checkpoint: (step) => seen.checkpoints.push(step),
    },
  });
  return { c, job, record, outbox, seen, logs, dir };
}

export const joinMsg = (workerId: string, rankHint = -1): M['Join'] => ({
  workerId, ringAddress: `${workerId}.local:7000`, backend: 'cpu', rankHint, pid: 100, host: 'h', metricsPort: 0,
});

export const ready = (rank: number, o: Partial<M['Ready']> = {}): M['Ready'] => ({
  runId: RUN, rank, trainExamples: 40, evalExamples: 8, startStep: 0, totalSteps: 10, ...o,
});

export const stepReport = (rank: number, step: number, o: Partial<M['StepReport']> = {}): M['StepReport'] => ({
  runId: RUN, rank, step, loss: 3 - step / 10 + rank, count: 32, gradNorm: 1, lr: 1e-3, inputTokens: 64, samples: 4,
  computeMs: 20, reduceMs: 5, paramHash: '', reduceBytes: 0, ...o,
});

export const evalReport = (rank: number, step: number, state: EvalState | string, runId = RUN): M['EvalReport'] => ({
  runId, rank, step, stateJson: typeof state === 'string' ? state : JSON.stringify(state),
});

/** Workers w0..w(n-1) joined in order (so w_k is rank k), assigned, and all ready: the run is training. */
export function startRun(c: Coordinator, n: number, o: Partial<M['Ready']> = {}): void {
  for (let k = 0; k < n; k++) c.onJoin(joinMsg(`w${k}`));
  for (let k = 0; k < n; k++) c.onReady(ready(k, o));
}

/** Every rank reports `step` (rank 0 last). */
export async function completeStep(c: Coordinator, n: number, step: number, o: Partial<M['StepReport']> = {}): Promise<void> {
  for (let k = n - 1; k >= 0; k--) await c.onStepReport(stepReport(k, step, o));
}

/** How `finished` settled, without waiting for it if it has not (a failure test must not hang). */
export async function settled<T>(p: Promise<T>): Promise<{ value?: T; error?: Error } | 'pending'> {
  const pending = Symbol('pending');
  const r = await Promise.race([p.then((value) => ({ value }), (error: Error) => ({ error })), new Promise<symbol>((res) => setImmediate(() => res(pending)))]);
  return r === pending ? 'pending' : (r as { value?: T; error?: Error });
}
