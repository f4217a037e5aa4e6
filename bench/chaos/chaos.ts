/**
 * The fault campaign (issue 15, "Multi-host fault tests"): N workers in their own network namespaces,
 * supervised like Kubernetes pods, elastic `on_loss: wait`; `--count` faults drawn with `--seed` from
 * SIGKILL / SIGSTOP of a worker, a partition, a bad-link burst, a NATS restart and a coordinator SIGKILL,
 * one at a time; then the final parameters are compared with a fault-free run of the same job.
 *
 *   npm run bench:chaos -- [--seed 7] [--count 20] [--workers 3] [--steps N] [--steps-per-s R] [--budget-s 1500]
 *
 * The job's length is sized by time, so the run outlasts the campaign on an idle machine as on a
 * loaded one: steps = count x FAULT_S x the job's steps per second on this machine now (measured by
 * a fault-free 40-step run of the same job just before, unless --steps-per-s or --steps is given),
 * + 40. Fewer faults fired than asked (the run ended first) fails the bench, saying so.
 *
 * Prints a table (fault, target, time, detection, recovery, steps lost) and writes it with the run's
 * facts to bench/results/chaos.json. Needs root (ip netns); everything it creates is named rtc-<pid>-*
 * and removed at the end, also on failure.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { newJobSecret } from '../../src/control/auth.ts';
import { stepRanges } from '../../src/coordinator/step-book.ts';
import { history, runLocal, startLocal } from '../../tests/integration/cluster-helpers.ts';
import { finalBytes } from '../../tests/integration/elastic-helpers.ts';
import { ChaosCluster, within } from '../../tests/chaos/cluster.ts';
import { FAULT_KINDS, runCampaign, type FaultKind, type FaultResult } from '../../tests/chaos/faults.ts';
import { chaosJob } from '../../tests/chaos/job.ts';
import { createTopology, destroyTopology, netnsUnavailable, removeStale, shapingMode } from '../../tests/chaos/netns.ts';

const { values: a } = parseArgs({
  options: {
    seed: { type: 'string', default: '7' },
    count: { type: 'string', default: '20' },
    workers: { type: 'string', default: '3' },
    steps: { type: 'string' },
    'steps-per-s': { type: 'string' },
    'budget-s': { type: 'string', default: '1500' },
    // The default cluster.heartbeat_timeout_ms: 2 s dropped ranks while loading at load average 30.
    'heartbeat-ms': { type: 'string', default: '5000' },
    kinds: { type: 'string', default: FAULT_KINDS.join(',') },
    out: { type: 'string', default: 'bench/results/chaos.json' },
    keep: { type: 'boolean', default: false },
  },
});
const seed = Number(a.seed);
const count = Number(a.count);
const workers = Number(a.workers);
const HB = Number(a['heartbeat-ms']);
/**
 * Seconds of training a fault takes, from the healthy wait before it to its recovery. Session 6 on an
 * idle machine: 10-11 faults in 85-125 s (8-12 s each); a partition or stop lasts up to 3 heartbeat
 * timeouts (15 s) and a replacement process starts in 2-5 s idle, much longer loaded. The run shares
 * the cores with the fault-free reference while that runs, and stops and kills stop training: 20 s
 * leaves a margin.
 */
const FAULT_S = 20;
const budgetMs = Number(a['budget-s']) * 1000;
const kinds = a.kinds!.split(',') as FaultKind[];
for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`--kinds: unknown fault "${k}" (known: ${FAULT_KINDS.join(', ')})`);

const why = netnsUnavailable();
if (why) {
  console.error(`bench:chaos needs network namespaces: ${why}`);
  process.exit(2);
}

const removed = removeStale();
if (removed.length) console.error(`[chaos] removed leftovers of dead runs: ${removed.join(', ')}`);
const dir = await mkdtemp(join(tmpdir(), 'ringtune-chaos-'));
let stepsPerS = a['steps-per-s'] ? Number(a['steps-per-s']) : undefined;
if (!a.steps && stepsPerS === undefined) stepsPerS = await measureStepsPerS();
const steps = a.steps ? Number(a.steps) : Math.ceil(count * FAULT_S * stepsPerS!) + 40;
console.error(`[chaos] ${steps} steps${a.steps ? ' (--steps)' : ` = ${count} faults x ${FAULT_S} s x ${stepsPerS!.toFixed(1)} steps/s + 40`}`);
const job = await chaosJob(dir, { workers, steps, heartbeatTimeoutMs: HB });
const topo = createTopology(workers);
const c = new ChaosCluster({ topo, jobFile: job.file, jobName: job.name, secret: newJobSecret(), maxRestarts: 10 * count + 20, restartDelayMs: 500, logFile: join(dir, 'chaos.log') });
let refChild: ReturnType<typeof startLocal> | undefined;
const stopAll = async () => {
  await c.stop();
  if (refChild?.child.exitCode === null) refChild.child.kill('SIGKILL');
  destroyTopology(topo);
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
let exitCode = 0;
try {
  const load0 = loadavg();
  const t0 = performance.now();
  // The fault-free reference runs alongside (its own NATS on loopback; same job, another output).
  refChild = startLocal(job.file, ['--output', join(dir, 'out-ref')]);
  await c.start();
  const results = await runCampaign(c, { seed, count, kinds, budgetMs, heartbeatTimeoutMs: HB }, {
    totalSteps: steps, shape: { delayMs: 200, lossPct: 5, rateKbit: 2000 }, endMarginSteps: 6, healthyMs: 300_000, recoverMs: 300_000, gapMs: 1500,
    log: (l) => console.error(l),
  });
  // A fault that never recovered: the run is stuck, do not wait out the budget.
  const stuck = results.at(-1)?.recoveryMs === null && !c.completed;
  const code = await within(c.done, stuck ? 10_000 : Math.max(60_000, budgetMs - (performance.now() - t0)), -1);
  const wallS = (performance.now() - t0) / 1000;
  const load1 = loadavg();
  const refCode = await within(refChild.exit, 600_000, -1);

  let identical: boolean | string = 'not compared';
  let stepsOnce: boolean | string = 'not checked';
  if (code === 0 && refCode === 0) {
    const [got, want] = [await finalBytes(join(dir, `out-${job.name}`)), await finalBytes(join(dir, 'out-ref'))];
    const differ = [...want].filter(([k, w]) => !got.get(k)?.equals(w)).map(([k]) => k);
    identical = differ.length === 0 && got.size === want.size ? true : `differ: ${differ.join(', ')}`;
    const hs = (await history(join(dir, `out-${job.name}`))).filter((x) => x.type === 'train').map((x) => Number(x.step));
    stepsOnce = historyProblem(hs, steps) ?? true;
  }
  const coordKills = results.filter((r) => r.kind === 'sigkill-coordinator');
  const coordinatorRestart = coordKills.length === 0 ? 'no coordinator kill drawn'
    : coordKills.map((r) => (r.restarted.some((x) => x.startsWith('w')) ? 'workers restarted, run resumed from the checkpoint' : 'live workers kept')).join('; ');

  console.log(table(results));
  const summary = {
    command: `npm run bench:chaos -- --seed ${seed} --count ${count} --workers ${workers}${a.steps ? ` --steps ${steps}` : ''}`,
    seed, count, workers, steps, stepsPerS: stepsPerS === undefined ? undefined : +stepsPerS.toFixed(1), heartbeatTimeoutMs: HB, shaping: shapingMode().why,
    loadAverage: { start: load0.map((x) => +x.toFixed(2)), end: load1.map((x) => +x.toFixed(2)) },
    wallSeconds: Math.round(wallS), faultsInjected: results.length, runExit: code, referenceExit: refCode,
    finalParamsBitIdentical: identical, everyStepOnceInHistory: stepsOnce, coordinatorRestart,
    restarts: Object.fromEntries(c.restarts), faults: results,
  };
  console.log(JSON.stringify({ ...summary, faults: undefined }, null, 2));
  await mkdir(join(a.out!, '..'), { recursive: true });
  await writeFile(a.out!, `${JSON.stringify(summary, null, 2)}\n`);
  console.error(`[chaos] wrote ${a.out}; logs in ${dir}/chaos.log${a.keep ? '' : ' (removed; --keep keeps them)'}`);
  if (results.length < count) console.error(`[chaos] only ${results.length} of ${count} faults fired before the run ended: give it more steps (--steps, or a lower --steps-per-s)`);
  if (stepsOnce !== true) console.error(`[chaos] the metrics history does not hold every train step once, in order (${stepsOnce}); logs: ${dir}/chaos.log`);
  if (code !== 0 || identical !== true || stepsOnce !== true || results.length < count) exitCode = 1;
} finally {
  await stopAll();
  if (!a.keep) await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);

/** What is wrong with the train steps of metrics.jsonl (every step 1..total once, in order), or undefined. */
function historyProblem(hs: number[], total: number): string | undefined {
  const seen = new Set(hs);
  const missing = Array.from({ length: total }, (_, i) => i + 1).filter((s) => !seen.has(s));
  const twice = hs.filter((s, i) => hs.indexOf(s) !== i);
  const disorder = hs.findIndex((s, i) => i > 0 && s < hs[i - 1]!);
  if (!missing.length && !twice.length && disorder < 0) return undefined;
  return `history steps: ${hs.length} lines of ${total}` + (missing.length ? `; missing ${stepRanges(missing)}` : '') +
    (twice.length ? `; twice ${stepRanges([...new Set(twice)].sort((x, y) => x - y))}` : '') + (disorder >= 0 ? `; step ${hs[disorder]} after ${hs[disorder - 1]}` : '');
}

/**
 * The chaos job's steps per second on this machine now: a fault-free 40-step `ringtune local` run of
 * the same job (same workers), timed from its metrics.jsonl (time_ms of steps 10 and 40: start-up excluded).
 */
async function measureStepsPerS(): Promise<number> {
  const cal = await chaosJob(dir, { workers, steps: 40, heartbeatTimeoutMs: HB, name: 'calibrate' });
  const r = await runLocal(cal.file);
  if (r.code !== 0) throw new Error(`the calibration run failed (exit ${r.code}):\n${r.output.slice(-3000)}`);
  const t = new Map((await history(join(dir, `out-${cal.name}`))).filter((x) => x.type === 'train').map((x) => [Number(x.step), Number(x.time_ms)]));
  const rate = 30 / ((t.get(40)! - t.get(10)!) / 1000);
  console.error(`[chaos] calibration: ${rate.toFixed(1)} steps/s (fault-free ${workers}-worker run, steps 10-40)`);
  return rate;
}

function table(rs: FaultResult[]): string {
  const rows = [['#', 'fault', 'target', 'at s', 'lasts ms', 'detection ms', 'recovery ms', 'steps lost', 'restarted', 'verdict']];
  rs.forEach((r, i) => rows.push([String(i + 1), r.kind, r.target, (r.atMs / 1000).toFixed(1), String(r.durationMs), String(r.detectionMs ?? '-'), String(r.recoveryMs ?? '-'), String(r.stepsLost ?? '-'), r.restarted.join(' ') || '-', (r.verdict ?? 'none').slice(0, 70)]));
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n').replace(/\n/, `\n|${rows[0]!.map(() => '---').join('|')}|\n`);
}
