/**
 * The metrics-history hole (issue 15, found by `npm run bench:chaos -- --seed 7 --count 20`): a
 * coordinator missed some steps' reports (a NATS outage) and was killed before their re-sends came;
 * the coordinator that took over read "metrics.jsonl holds steps through N" from its highest line
 * and took the steps below it as recorded, so the re-sent reports were ignored and acknowledged,
 * and those steps were never recorded. Deterministic here, with real processes, real NATS and real
 * sockets: the first coordinator (tests/chaos/drop-steps-coordinator.ts, the real CLI with a
 * test-only filter) never sees the reports of steps 6-8; it is SIGKILLed after step 12's checkpoint;
 * `ringtune coordinator --resume-if-present` takes over. metrics.jsonl must hold every train step
 * once, in step order, each from both ranks' reports.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { newJobSecret } from '../../src/control/auth.ts';
import { clusterScratch, history, makeJob, startCli, until, type CliProc } from '../integration/cluster-helpers.ts';

const STEPS = 24;
const DROPPED = [6, 7, 8];
const FIXTURE = fileURLToPath(new URL('./drop-steps-coordinator.ts', import.meta.url));

test('a coordinator that missed steps 6-8 is killed after step 12; the one taking over records them from the re-sent reports: every step once, in order', { timeout: 240_000 }, async (t) => {
  const started = performance.now();
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-hole-');
  // Evaluation at step 16: the workers, training on without a coordinator, wait there for its decision
  // (so the run cannot end before the new coordinator comes, however fast the machine).
  const file = await makeJob(dir, 'hole', { workers: 2, maxSteps: STEPS, globalBatch: 8, microBatch: 4, checkpointEvery: 4, heartbeatTimeoutMs: 3000, evalEvery: 16 });
  const spec = parse(await readFile(file, 'utf8')) as Record<string, Record<string, unknown>>;
  spec.elastic = { on_loss: 'shrink' }; // coordinator recovery is on by default under shrink
  await writeFile(file, stringify(spec));
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret() };
  const args = ['coordinator', file, '--resume-if-present', '--nats', nats.url, '--metrics-port', '0'];

  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { env: { ...env, DROP_STEP_REPORTS: DROPPED.join(',') }, stdio: ['ignore', 'pipe', 'pipe'] });
  all.push(child);
  let firstOut = '';
  child.stdout!.on('data', (d) => (firstOut += d));
  child.stderr!.on('data', (d) => (firstOut += d));
  const workers = [0, 1].map((i) => startCli(['worker', '--nats', nats.url, '--job', 'hole', '--ring-port', '0', '--metrics-port', '0', '--rank-hint', String(i), '--threads', '1'], env, all));
  const dump = (procs: Array<CliProc | string>) => procs.map((p) => (typeof p === 'string' ? p : p.output())).join('\n----\n');
  try {
    await until('checkpoint step 12', () => {
      if (child.exitCode !== null) throw new Error(`the first coordinator exited ${child.exitCode}`);
      return /\[coordinator\] checkpoint step (1[2-9]|2\d):/.test(firstOut);
    }, 180_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${dump([firstOut, ...workers])}`);
  }
  t.diagnostic(`checkpoint 12 after ${Math.round(performance.now() - started)} ms`);
  assert.match(firstOut, /StepReports of steps 6, 7, 8 are dropped/);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const before = (await history(join(dir, 'out-hole'))).filter((l) => l.type === 'train').map((l) => Number(l.step));
  t.diagnostic(`the killed coordinator's metrics.jsonl: train steps ${before.join(',')}`);
  assert.ok(!before.some((s) => DROPPED.includes(s)), 'the first coordinator never recorded the dropped steps');

  const second = startCli(args, env, all);
  const code = await Promise.race([second.exit, new Promise<number>((r) => setTimeout(() => r(-1), 150_000).unref())]);
  assert.equal(code, 0, dump([second, ...workers]));
  for (const w of workers) assert.equal(await w.exit, 0, w.output());
  const lines = await history(join(dir, 'out-hole'));
  const train = lines.filter((l) => l.type === 'train');
  assert.deepEqual(train.map((l) => Number(l.step)), Array.from({ length: STEPS }, (_, i) => i + 1), 'every train step once, in step order');
  for (const l of train) assert.equal(l.workers, 2, `step ${l.step}: both ranks' reports`);
  assert.match(second.output(), /recovering run \S+: .*metrics\.jsonl holds steps through 5\b/, 'recorded through the hole, not through the highest line');
  const order = lines.map((l) => Number(l.step) * 2 + (l.type === 'eval' ? 1 : 0));
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'metrics.jsonl in step order (evaluations after their step)');
  t.diagnostic(`done in ${Math.round(performance.now() - started)} ms`);
});
