/**
 * Faults for a ChaosCluster, drawn from a seeded RNG, injected one at a time, each measured off the
 * coordinator's log:
 *   detection  fault -> the coordinator's verdict (`lost after step`, `ring epoch`, `failed after`,
 *              a restarted coordinator's `waiting for ... resuming from step`); none when the fault
 *              passed unnoticed (a stop or partition shorter than the heartbeat timeout);
 *   recovery   fault -> the first `step N/T` logged after the fault was undone and after the verdict;
 *   steps lost applied steps run again: the highest step logged before the recovery minus the step the
 *              run went on from (`from step T` of a re-form, `resuming from step S` of a restart).
 * Every wait is bounded; a fault that does not recover within `recoverMs` is recorded as such and ends
 * the campaign.
 */
import type { ChaosCluster, LogLine, Role } from './cluster.ts';
import { setLink, shape, unshape } from './netns.ts';
import { sleep } from '../integration/cluster-helpers.ts';
// The seeded mulberry32 the metric tests use: the same seed draws the same campaign.
import { rng } from '../eval/helpers.ts';

export type FaultKind = 'sigkill-worker' | 'sigstop-worker' | 'partition' | 'shape' | 'nats-restart' | 'sigkill-coordinator';
export const FAULT_KINDS: readonly FaultKind[] = ['sigkill-worker', 'sigstop-worker', 'partition', 'shape', 'nats-restart', 'sigkill-coordinator'];

export interface Fault {
  kind: FaultKind;
  /** Worker index (namespace) for worker faults; -1 for NATS and the coordinator. */
  worker: number;
  /** How long a stop, partition, shaping burst or NATS outage lasts. */
  durationMs: number;
}

export interface FaultResult extends Fault {
  target: string;
  /** ms since the cluster started */
  atMs: number;
  detectionMs: number | null;
  /** The coordinator line that was the verdict. */
  verdict: string | null;
  recoveryMs: number | null;
  stepBefore: number;
  wentOnFrom: number | null;
  stepsLost: number | null;
  /** Processes the supervisor restarted because of this fault. */
  restarted: string[];
  detail: string;
}

/**
 * The next fault. Durations are drawn around the heartbeat timeout so both sides of it occur: a stop
 * or partition shorter than it may go unnoticed, a longer one gets the rank dropped.
 */
export function drawFault(r: () => number, kinds: readonly FaultKind[], workers: number, heartbeatTimeoutMs: number): Fault {
  const kind = kinds[Math.floor(r() * kinds.length)]!;
  const between = (lo: number, hi: number) => Math.round(lo + r() * (hi - lo));
  const worker = kind === 'nats-restart' || kind === 'sigkill-coordinator' ? -1 : Math.floor(r() * workers);
  const durationMs = {
    'sigkill-worker': 0,
    'sigkill-coordinator': 0,
    'sigstop-worker': between(0.5 * heartbeatTimeoutMs, 2.5 * heartbeatTimeoutMs),
    partition: between(0.5 * heartbeatTimeoutMs, 3 * heartbeatTimeoutMs),
    shape: between(1000, 4000),
    // Shorter than the heartbeat timeout: longer fails the run by design (the NATS-outage rule).
    'nats-restart': between(300, 0.6 * heartbeatTimeoutMs),
  }[kind];
  return { kind, worker, durationMs };
}

/**
 * Progress: the coordinator logs `step N/T` only every T/10 steps, but `checkpoint step N:` at every
 * checkpoint (every 2 steps in the chaos job), so both count; the step is group 1 or 2.
 */
const STEP = /^\[coordinator\] (?:step (\d+)\/\d+ loss|checkpoint step (\d+): )/;
const stepOf = (m: RegExpExecArray) => Number(m[1] ?? m[2]);
const VERDICT = /\[coordinator\] (rank \d+ \(.*\) lost after step|ring epoch \d+:|.*failed after step|job \S+: waiting for \d+ workers)/;

/** The highest step the coordinator logged at or before line index `upTo` (exclusive). */
function lastStep(lines: LogLine[], upTo = lines.length): number {
  for (let i = upTo - 1; i >= 0; i--) {
    const m = lines[i]!.who === 'coordinator' ? STEP.exec(lines[i]!.line) : null;
    if (m) return stepOf(m);
  }
  return 0;
}

export interface CampaignOptions {
  /** The job's training.max_steps. */
  totalSteps: number;
  /** Shaping of a `shape` fault (see netns.ts Shape). */
  shape: { delayMs: number; lossPct: number; rateKbit: number };
  /** No fault within this many steps of the end (a loss while finishing fails the run by design). */
  endMarginSteps: number;
  /** Bound on waiting for a healthy, training cluster before a fault. */
  healthyMs: number;
  /** Bound on recovery after a fault. */
  recoverMs: number;
  /** Wait (uniform up to this) between recovery and the next fault. */
  gapMs: number;
  log?: (l: string) => void;
}

/**
 * Waits until the cluster trains with every process up: the current coordinator logged `training`
 * and a step after `since`, and no step beyond total - margin. Returns false when the run ended or
 * got too close to its end, or the bound passed.
 */
async function healthy(c: ChaosCluster, sinceIdx: number, o: CampaignOptions): Promise<boolean> {
  const end = Date.now() + o.healthyMs;
  while (Date.now() < end) {
    if (c.completed) return false;
    const roles: Role[] = ['coordinator', 'nats', ...c.o.topo.hosts.map((h) => `w${h.index}` as Role)];
    const up = roles.every((r) => c.running(r));
    const lines = c.lines;
    let stepAfter = false;
    for (let i = lines.length - 1; i >= sinceIdx; i--) {
      const l = lines[i]!;
      if (l.who !== 'coordinator') continue;
      const m = STEP.exec(l.line);
      if (m) {
        if (o.totalSteps - stepOf(m) <= o.endMarginSteps) return false;
        stepAfter = true;
        break;
      }
    }
    if (up && stepAfter) return true;
    await sleep(100);
  }
  return false;
}

/** Injects `f`, undoes it after its duration, and measures it. */
export async function injectAndMeasure(c: ChaosCluster, f: Fault, o: CampaignOptions): Promise<FaultResult> {
  const h = f.worker >= 0 ? c.o.topo.hosts[f.worker]! : undefined;
  const role: Role = h ? `w${h.index}` : f.kind === 'nats-restart' ? 'nats' : 'coordinator';
  const startIdx = c.lines.length;
  const stepBefore = lastStep(c.lines);
  const atMs = c.now();
  const pidBefore = new Map([...c.procs].map(([r, p]) => [r, p.pid]));
  let detail = '';
  const proc = c.running(role);
  c.note(`fault ${f.kind} on ${role} (${f.durationMs} ms)`);
  switch (f.kind) {
    case 'sigkill-worker':
    case 'sigkill-coordinator':
      proc?.kill('SIGKILL');
      break;
    case 'sigstop-worker':
      proc?.kill('SIGSTOP');
      await sleep(f.durationMs);
      proc?.kill('SIGCONT');
      break;
    case 'partition':
      setLink(h!, false);
      await sleep(f.durationMs);
      setLink(h!, true);
      break;
    case 'shape':
      detail = shape(h!, { ...o.shape });
      await sleep(f.durationMs);
      unshape(h!);
      break;
    case 'nats-restart':
      await c.stopNats();
      await sleep(f.durationMs);
      await c.startNats();
      break;
  }
  const undoneMs = c.now();

  // Verdict, then the first step after both the undo and the verdict.
  let verdictIdx = -1;
  let recoveredIdx = -1;
  const end = Date.now() + o.recoverMs;
  while (recoveredIdx < 0 && Date.now() < end && !c.completed) {
    for (let i = startIdx; i < c.lines.length; i++) {
      const l = c.lines[i]!;
      if (l.who !== 'coordinator') continue;
      if (VERDICT.test(l.line)) verdictIdx = i; // the last one: a restart after a failure verdict counts
      // A kill is always a loss: a step the ring finished before it noticed is not a recovery.
      if (STEP.test(l.line) && l.t >= undoneMs && i > verdictIdx && (verdictIdx >= 0 || !f.kind.startsWith('sigkill'))) {
        // A step logged after a verdict, with no later verdict before it.
        if (!c.lines.slice(i + 1).some((x) => x.who === 'coordinator' && VERDICT.test(x.line))) { recoveredIdx = i; break; }
      }
    }
    if (recoveredIdx < 0) await sleep(100);
  }
  const lines = c.lines;
  const verdictLine = lines.slice(startIdx).find((l) => l.who === 'coordinator' && VERDICT.test(l.line));
  const recovered = recoveredIdx >= 0 ? lines[recoveredIdx]! : undefined;
  let wentOnFrom: number | null = null;
  if (recovered) {
    wentOnFrom = stepOf(STEP.exec(recovered.line)!) - 1;
    // The step the run went on from: a re-form's target or a restart's checkpoint.
    for (const l of lines.slice(startIdx, recoveredIdx)) {
      const m = /ring epoch \d+: \d+ workers from step (\d+)/.exec(l.line) ?? /resuming from step (\d+)/.exec(l.line);
      if (l.who === 'coordinator' && m) wentOnFrom = Number(m[1]);
    }
    // A restarted coordinator that found no checkpoint started the run over: from step 0.
    const restart = lines.slice(startIdx, recoveredIdx).find((l) => l.who === 'coordinator' && /job \S+: waiting for \d+ workers/.test(l.line));
    if (restart && !/resuming from step/.test(restart.line)) wentOnFrom = 0;
  }
  const highest = recovered ? Math.max(stepBefore, lastStep(lines, recoveredIdx)) : stepBefore;
  const restarted = [...c.procs].filter(([r, p]) => r !== 'nats' && pidBefore.get(r) !== p.pid).map(([r]) => r);
  const result: FaultResult = {
    ...f, target: role, atMs: Math.round(atMs),
    detectionMs: verdictLine ? Math.round(verdictLine.t - atMs) : null,
    verdict: verdictLine ? verdictLine.line.replace(/^\[coordinator\] /, '').slice(0, 160) : null,
    recoveryMs: recovered ? Math.round(recovered.t - atMs) : null,
    stepBefore, wentOnFrom, stepsLost: recovered && wentOnFrom !== null ? Math.max(0, highest - wentOnFrom) : null,
    restarted, detail,
  };
  o.log?.(`[chaos] ${f.kind} ${role} ${f.durationMs} ms: detection ${result.detectionMs ?? '-'} ms, recovery ${result.recoveryMs ?? '-'} ms, steps lost ${result.stepsLost ?? '-'}; restarted ${restarted.join(' ') || 'none'}; ${result.verdict ?? 'no verdict'}`);
  return result;
}

/**
 * Up to `count` faults drawn from `kinds` with seed `seed`, one at a time, each after the cluster is
 * healthy again; stops early when the run nears its end, a fault does not recover, or `budgetMs` passes.
 */
export async function runCampaign(c: ChaosCluster, a: { seed: number; count: number; kinds: readonly FaultKind[]; budgetMs: number; heartbeatTimeoutMs: number; sequence?: Fault[] }, o: CampaignOptions): Promise<FaultResult[]> {
  const r = rng(a.seed);
  const results: FaultResult[] = [];
  const end = Date.now() + a.budgetMs;
  let since = 0;
  for (let k = 0; k < a.count && Date.now() < end; k++) {
    if (!(await healthy(c, since, o))) {
      o.log?.(`[chaos] stopping after ${results.length} faults: the run ${c.completed ? 'completed' : 'is near its end or not training'}`);
      break;
    }
    await sleep(Math.round(r() * o.gapMs));
    const f = a.sequence?.[k] ?? drawFault(r, a.kinds, c.o.topo.hosts.length, a.heartbeatTimeoutMs);
    const res = await injectAndMeasure(c, f, o);
    results.push(res);
    since = c.lines.length;
    if (res.recoveryMs === null && !c.completed) {
      o.log?.(`[chaos] ${f.kind} did not recover within ${o.recoverMs} ms: stopping the campaign`);
      break;
    }
  }
  return results;
}
