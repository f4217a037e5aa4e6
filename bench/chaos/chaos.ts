/**
 * The fault campaign (issue 15, "Multi-host fault tests"): N workers in their own network namespaces,
 * supervised like Kubernetes pods, elastic `on_loss: wait`; `--count` faults drawn with `--seed` from
 * SIGKILL / SIGSTOP of a worker, a partition, a bad-link burst, a NATS restart and a coordinator SIGKILL,
 * one at a time; then the final parameters are compared with a fault-free run of the same job.
 *
 *   npm run bench:chaos -- [--seed 7] [--count 20] [--workers 3] [--steps N] [--budget-s 1500]
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
import { history, startLocal } from '../../tests/integration/cluster-helpers.ts';
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
// Enough steps that the run outlasts the campaign: training goes on during the faults that are not
// losses and between faults (about 10 per fault at load average 20-30 here), plus the end margin.
const steps = Number(a.steps ?? 20 * count + 40);
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
    stepsOnce = JSON.stringify(hs) === JSON.stringify(Array.from({ length: steps }, (_, i) => i + 1)) ? true : `history steps: ${hs.length} lines`;
  }
  const coordKills = results.filter((r) => r.kind === 'sigkill-coordinator');
  const coordinatorRestart = coordKills.length === 0 ? 'no coordinator kill drawn'
    : coordKills.map((r) => (r.restarted.some((x) => x.startsWith('w')) ? 'workers restarted, run resumed from the checkpoint' : 'live workers kept')).join('; ');

  console.log(table(results));
  const summary = {
    command: `npm run bench:chaos -- --seed ${seed} --count ${count} --workers ${workers} --steps ${steps}`,
    seed, count, workers, steps, heartbeatTimeoutMs: HB, shaping: shapingMode().why,
    loadAverage: { start: load0.map((x) => +x.toFixed(2)), end: load1.map((x) => +x.toFixed(2)) },
    wallSeconds: Math.round(wallS), faultsInjected: results.length, runExit: code, referenceExit: refCode,
    finalParamsBitIdentical: identical, everyStepOnceInHistory: stepsOnce, coordinatorRestart,
    restarts: Object.fromEntries(c.restarts), faults: results,
  };
  console.log(JSON.stringify({ ...summary, faults: undefined }, null, 2));
  await mkdir(join(a.out!, '..'), { recursive: true });
  await writeFile(a.out!, `${JSON.stringify(summary, null, 2)}\n`);
  console.error(`[chaos] wrote ${a.out}; logs in ${dir}/chaos.log${a.keep ? '' : ' (removed; --keep keeps them)'}`);
  if (code !== 0 || identical !== true || results.length < count) exitCode = 1;
} finally {
  await stopAll();
  if (!a.keep) await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);

function table(rs: FaultResult[]): string {
  const rows = [['#', 'fault', 'target', 'at s', 'lasts ms', 'detection ms', 'recovery ms', 'steps lost', 'restarted', 'verdict']];
  rs.forEach((r, i) => rows.push([String(i + 1), r.kind, r.target, (r.atMs / 1000).toFixed(1), String(r.durationMs), String(r.detectionMs ?? '-'), String(r.recoveryMs ?? '-'), String(r.stepsLost ?? '-'), r.restarted.join(' ') || '-', (r.verdict ?? 'none').slice(0, 70)]));
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n').replace(/\n/, `\n|${rows[0]!.map(() => '---').join('|')}|\n`);
}
