/**
 * Coordinator restart (docs/reliability.md) with real processes, real NATS and real sockets, started
 * as the Kubernetes manifests start them (`ringtune coordinator --resume-if-present`, `ringtune worker`):
 *  - the coordinator is SIGKILLed mid-training; a message forged with another secret is refused by the
 *    workers; a new coordinator with the same command takes the run over: same run id, every step in
 *    metrics.jsonl once, the workers keep their processes, and the final parameters equal a fault-free
 *    run's bit for bit (the 2-rank ring is restored: "same result" rule);
 *  - nobody restarts the coordinator: the workers abort after cluster.coordinator_recovery_ms, saying why.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { ControlAuth, newJobSecret } from '../../src/control/auth.ts';
import { Bus } from '../../src/control/bus.ts';
import { subjects } from '../../src/control/subjects.ts';
import { SESSION_FILE } from '../../src/coordinator/session-file.ts';
import { clusterScratch, history, makeJob, runLocal, until, startCli, type CliProc } from './cluster-helpers.ts';
import { assertSameFinal } from './elastic-helpers.ts';

const STEPS = 24;

/** A process's exit code, or past `timeoutMs` an error carrying the processes' output. */
async function exitWithin(p: CliProc, timeoutMs: number, procs: CliProc[]): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no exit within ${timeoutMs} ms\n${procs.map((x) => x.output()).join('\n----\n')}`)), timeoutMs)));
  try {
    return await Promise.race([p.exit, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `until`, whose timeout error carries the processes' output. */
async function untilOr(what: string, ok: () => boolean, timeoutMs: number, procs: CliProc[]): Promise<void> {
  try {
    await until(what, () => {
      if (procs.some((p) => /\[coordinator\] failed/.test(p.output()))) throw new Error('the coordinator failed');
      return ok();
    }, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${procs.map((p) => p.output()).join('\n----\n')}`);
  }
}

/** A 2-worker job; `cluster` and `elastic` fields are added to makeJob's. */
async function job(dir: string, name: string, cluster: Record<string, unknown>, elastic?: Record<string, unknown>): Promise<string> {
  const file = await makeJob(dir, name, { workers: 2, maxSteps: STEPS, globalBatch: 16, microBatch: 4, checkpointEvery: 8, heartbeatTimeoutMs: 3000, evalEvery: 8 });
  const spec = parse(await readFile(file, 'utf8')) as Record<string, Record<string, unknown>>;
  Object.assign(spec.cluster!, cluster);
  if (elastic) spec.elastic = elastic;
  await writeFile(file, stringify(spec));
  return file;
}

describe('coordinator restart', () => {
test('SIGKILL mid-training, a forged Recover refused, a new --resume-if-present coordinator takes the run over; same run id, every step once, params equal the fault-free run bit for bit', { timeout: 420_000 }, async (t) => {
  const started = performance.now();
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-coord-restart-');
  // elastic.on_loss shrink: recovery is on by default (cluster.coordinator_recovery_ms 60000).
  const file = await job(dir, 'restart', {}, { on_loss: 'shrink' });
  // The reference: the same job, fault-free, run meanwhile. With the 2-rank ring restored the trajectory is the same.
  const refFile = await job(dir, 'ref', {}, { on_loss: 'shrink' });
  const reference = runLocal(refFile);
  const out = join(dir, 'out-restart');
  const secret = newJobSecret();
  const env = { ...process.env, RINGTUNE_JOB_SECRET: secret };
  const coordinator = () => startCli(['coordinator', file, '--resume-if-present', '--nats', nats.url, '--metrics-port', '0'], env, all);
  const first = coordinator();
  const workers = [0, 1].map((i) => startCli(['worker', '--nats', nats.url, '--job', 'restart', '--ring-port', '0', '--metrics-port', '0', '--rank-hint', String(i), '--threads', '1'], env, all));
  // The coordinator logs every 2nd step (a tenth of the run).
  await untilOr('step 3', () => {
    assert.equal(first.child.exitCode, null, first.output());
    return /\[coordinator\] step ([3-9]|\d\d)\//.test(first.output());
  }, 180_000, [first, ...workers]);
  const t0 = performance.now();
  t.diagnostic(`step >= 3 after ${Math.round(t0 - started)} ms`);
  const session = JSON.parse(await readFile(join(out, 'checkpoints', SESSION_FILE), 'utf8')) as { runId: string };
  first.child.kill('SIGKILL');
  await first.exit;

  // A "coordinator" without the job secret names the run: the workers drop its messages (bad MAC).
  const forged = await Bus.connect({ url: nats.url, name: 'forged' }, new ControlAuth(newJobSecret(), 'restart', 'coordinator-forged'));
  for (let i = 0; i < 3; i++) forged.publish(subjects('restart').control, 'Control', { runId: session.runId, recover: { epoch: 99, reason: 'forged' } });
  await forged.flush();
  await forged.close();
  await until('the workers refuse the forged message', () => workers.every((w) => /rejected a message on ringtune\.restart\.control \(bad-mac: from "coordinator-forged"\)/.test(w.output())), 20_000);

  const second = coordinator();
  const code = await exitWithin(second, 180_000, [second, ...workers]);
  const text = second.output();
  assert.equal(code, 0, text);
  for (const w of workers) assert.equal(await w.exit, 0, w.output());
  assert.match(text, new RegExp(`recovering run ${session.runId}: rank 0 = \\S+ \\(step \\d+\\), rank 1 = \\S+ \\(step \\d+\\) alive`));
  const target = Number(/ring epoch 1: 2 workers from step (\d+)/.exec(text)?.[1]);
  assert.ok(target >= 3 && target <= STEPS, text);
  for (const w of workers) {
    assert.match(w.output(), /coordinator coordinator-[0-9a-f]+ recovers run/, 'the worker process took the new coordinator');
    assert.doesNotMatch(w.output(), /recovers run .*forged/);
  }
  const summary = JSON.parse(text.slice(text.indexOf('{\n')));
  assert.equal(summary.run_id, session.runId, 'the same run');
  assert.equal(summary.steps, STEPS);
  // Every step recorded once: those the killed coordinator missed came from the workers' re-sent reports.
  const lines = await history(out);
  assert.deepEqual(lines.filter((l) => l.type === 'train').map((l) => Number(l.step)), Array.from({ length: STEPS }, (_, i) => i + 1));
  for (const l of lines.filter((x) => x.type === 'train')) assert.equal(l.workers, 2, `step ${l.step}: both ranks' reports`);
  await assert.rejects(readFile(join(out, 'checkpoints', SESSION_FILE)), 'the session file goes with the run');
  t.diagnostic(`recovered at step ${target} (killed after step >= 3)`);

  t.diagnostic(`recovered run finished ${Math.round(performance.now() - t0)} ms after the kill`);
  const ref = await reference;
  t.diagnostic(`reference finished after ${Math.round(performance.now() - started)} ms`);
  assert.equal(ref.code, 0, ref.output);
  await assertSameFinal(out, join(dir, 'out-ref'));
  const refLines = await history(join(dir, 'out-ref'));
  const pick = (h: typeof lines, type: string, keys: string[]) => h.filter((l) => l.type === type).map((l) => Object.fromEntries(keys.map((k) => [k, l[k]])));
  assert.deepEqual(pick(lines, 'train', ['step', 'loss', 'lr', 'grad_norm']), pick(refLines, 'train', ['step', 'loss', 'lr', 'grad_norm']), 'the same steps');
  // The evaluation abandoned with the old ring (if one was) ran again on the new one: the same evaluations.
  assert.deepEqual(pick(lines, 'eval', ['step', 'loss']), pick(refLines, 'eval', ['step', 'loss']), 'the same evaluations');
});

test('nobody restarts it -> the workers abort after cluster.coordinator_recovery_ms, naming why', { timeout: 240_000 }, async (t) => {
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-coord-gone-');
  const file = await job(dir, 'gone', { coordinator_recovery_ms: 1500 });
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret() };
  const first = startCli(['coordinator', file, '--resume-if-present', '--nats', nats.url, '--metrics-port', '0'], env, all);
  const workers = [0, 1].map((i) => startCli(['worker', '--nats', nats.url, '--job', 'gone', '--ring-port', '0', '--metrics-port', '0', '--rank-hint', String(i), '--threads', '1'], env, all));
  await untilOr('step 1', () => /\[coordinator\] step \d+\//.test(first.output()) || first.child.exitCode !== null, 180_000, [first, ...workers]);
  first.child.kill('SIGKILL');
  const killed = performance.now();
  for (const w of workers) {
    assert.notEqual(await w.exit, 0, w.output());
    assert.match(w.output(), /training on and waiting up to 1500 ms \(cluster\.coordinator_recovery_ms\)/);
    assert.match(w.output(), /no restarted coordinator recovered run [0-9a-f]+ within cluster\.coordinator_recovery_ms 1500/);
  }
  const waited = performance.now() - killed;
  // 2 x heartbeat_timeout_ms of silence, then the recovery window; not much more (the check runs every heartbeat interval).
  assert.ok(waited >= 7500 && waited < 20_000, `aborted ${Math.round(waited)} ms after the kill`);
});
});
