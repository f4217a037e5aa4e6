/**
 * Elastic training (docs/reliability.md) with real processes, real NATS and real sockets:
 *  - shrink: SIGKILL one of 3 workers mid-run; the run completes with 2, every example of each data
 *    epoch is used exactly once by the updates that were applied, and the final parameters equal, bit
 *    for bit, a fault-free 3-worker run checkpointed at the re-form step and resumed with 2 workers;
 *  - fail: the same kill stops the run as before elastic existed;
 *  - wait: a replacement started after the kill enters at a step boundary; the run completes with 3;
 *  - scale-up: a third worker joining a 2-worker run (max_workers 3) enters at a step boundary; the final
 *    parameters equal a fault-free 2-worker run checkpointed at the re-form step, resumed with 3.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { history, runLocal, sleep, startLocal, until } from './cluster-helpers.ts';
import { appliedExamples, assertSameFinal, checkpointAt, makeElasticJob, pidOfRank, readTrace, startWorker } from './elastic-helpers.ts';

// 96 lines, eval_fraction 0.125 -> 84 train examples; global batch 12 -> 7 steps per data epoch.
const BASE = { examples: 96, globalBatch: 12, microBatch: 2, epochs: 3, heartbeatTimeoutMs: 3000 };
const TRAIN_EXAMPLES = 84;
const TOTAL_STEPS = 21;

/**
 * The fault-free 3-worker run with a checkpoint after every step, run once for this file: shrink resumes
 * its reference from one of its checkpoints, wait compares its final parameters (checkpoints do not
 * change the arithmetic: that is what shrink's own reference rests on). One run of 5 processes fewer.
 */
let reference3: Promise<{ outDir: string; checkpoints: string }> | undefined;
const sharedDirs: string[] = [];
after(() => Promise.all(sharedDirs.map((d) => rm(d, { recursive: true, force: true }))));
function faultFree3(): Promise<{ outDir: string; checkpoints: string }> {
  reference3 ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtune-elastic-ref3-'));
    sharedDirs.push(dir);
    const ref = await runLocal(await makeElasticJob(dir, 'ref3', { ...BASE, workers: 3, checkpointEvery: 1, keep: 100 }));
    assert.equal(ref.code, 0, ref.output);
    return { outDir: join(dir, 'out-ref3'), checkpoints: join(dir, 'out-ref3', 'checkpoints') };
  })();
  return reference3;
}

/** Waits until the coordinator logged a completed step >= `step`. */
async function untilStep(run: { output: () => string; child: { exitCode: number | null } }, step: number): Promise<void> {
  await until(`step ${step}`, () => {
    assert.equal(run.child.exitCode, null, `run ended early:\n${run.output()}`);
    return [...run.output().matchAll(/\[coordinator\] step (\d+)\//g)].some((m) => Number(m[1]) >= step);
  }, 120_000);
}

test('shrink: SIGKILL of rank 0 of 3 -> the run completes with 2; exactly-once per epoch; params equal the checkpoint-and-resume reference bit for bit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-elastic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Rank 0 is the one lost: the new rank 0 (the old rank 1) writes the later checkpoints and the final model.
  const job = await makeElasticJob(dir, 'shrink', { ...BASE, workers: 3, checkpointEvery: 3, keep: 100, elastic: { on_loss: 'shrink', min_workers: 2 } });
  const trace = join(dir, 'trace.jsonl');
  const run = startLocal(job, [], { RINGTUNE_TRACE_EXAMPLES: trace });
  await untilStep(run, 4);
  const pid = pidOfRank(run.output(), 0);
  assert.ok(pid, run.output());
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  await until('the re-form', () => /ring epoch 1: 2 workers from step \d+/.test(run.output()) || run.child.exitCode !== null, 60_000);
  const reformMs = performance.now() - killedAt;
  const code = await run.exit;
  const out = run.output();
  assert.equal(code, 0, out);
  const target = Number(/ring epoch 1: 2 workers from step (\d+)/.exec(out)![1]);
  assert.ok(target >= 4 && target < TOTAL_STEPS, out);
  t.diagnostic(`re-formed at step ${target}, ${Math.round(reformMs)} ms after the kill`);

  // Every step was applied once; the steps after the re-form by 2 workers.
  const h = (await history(join(dir, 'out-shrink'))).filter((x) => x.type === 'train');
  assert.deepEqual(h.map((x) => Number(x.step)), Array.from({ length: TOTAL_STEPS }, (_, i) => i + 1));
  for (const x of h) if (Number(x.step) > target) assert.equal(x.workers, 2, `step ${x.step}`);
  assert.match(out, new RegExp(`\\[coordinator\\] checkpoint step ${TOTAL_STEPS}: `), 'the new rank 0 checkpoints');

  // Exactly once per data epoch: the examples of the applied updates (the latest ring epoch of each step).
  const applied = appliedExamples(await readTrace(trace));
  for (const [step, a] of applied) {
    assert.equal(new Set(a.examples).size, a.examples.length, `step ${step}: an example twice`);
    assert.deepEqual(a.ranks.sort(), step > target ? [0, 1] : [0, 1, 2], `step ${step}: ranks ${a.ranks}`);
  }
  for (const epoch of [0, 1, 2]) {
    const used = [...applied.values()].filter((a) => a.epoch === epoch).flatMap((a) => a.examples);
    assert.equal(used.length, TRAIN_EXAMPLES, `data epoch ${epoch}`);
    assert.equal(new Set(used).size, TRAIN_EXAMPLES, `data epoch ${epoch}: an example used twice`);
  }

  // The reference: fault-free with 3 workers (a checkpoint every step), resumed at `target` with 2.
  const ref3 = await faultFree3();
  const resumeDir = join(dir, 'ckpt-ref2');
  await mkdir(resumeDir, { recursive: true });
  await checkpointAt(ref3.checkpoints, target, resumeDir);
  const ref2Job = await makeElasticJob(dir, 'ref2', { ...BASE, workers: 2, checkpointDir: resumeDir });
  const ref2 = await runLocal(ref2Job, ['--resume']);
  assert.equal(ref2.code, 0, ref2.output);
  await assertSameFinal(join(dir, 'out-shrink'), join(dir, 'out-ref2'), 'the reference');
});

test('fail (the default): SIGKILL of a worker stops the run naming the rank, as before', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-elastic-fail-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeElasticJob(dir, 'failing', { ...BASE, workers: 3 });
  const run = startLocal(job);
  await untilStep(run, 2);
  process.kill(pidOfRank(run.output(), 2)!, 'SIGKILL');
  const code = await run.exit;
  assert.notEqual(code, 0);
  assert.match(run.output(), /rank 2 \([^)]+\) failed after step \d+/);
  assert.doesNotMatch(run.output(), /ring epoch 1/);
});

test('wait: a replacement started after the kill joins at a step boundary; the run completes with 3 workers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-elastic-wait-'));
  const nats = await startNatsServer();
  t.after(async () => {
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const secret = newJobSecret();
  const job = await makeElasticJob(dir, 'waiting', { ...BASE, workers: 3, elastic: { on_loss: 'wait', min_workers: 2, wait_timeout_ms: 60_000 } });
  const trace = join(dir, 'trace.jsonl');
  const env = { RINGTUNE_JOB_SECRET: secret, RINGTUNE_TRACE_EXAMPLES: trace };
  const run = startLocal(job, ['--nats', nats.url], env);
  await untilStep(run, 3);
  process.kill(pidOfRank(run.output(), 1)!, 'SIGKILL');
  await until('the lost rank', () => /lost after step/.test(run.output()), 30_000);
  await sleep(500); // the coordinator is waiting now: the replacement comes later
  const extra = await startWorker('waiting', nats.url, secret, { RINGTUNE_TRACE_EXAMPLES: trace });
  t.after(() => { if (extra.child.exitCode === null) extra.child.kill('SIGKILL'); });
  const code = await run.exit;
  assert.equal(code, 0, `${run.output()}\n--- replacement:\n${extra.output()}`);
  assert.equal(await extra.exit, 0, extra.output());
  const m = /ring epoch 1: 3 workers from step (\d+) \(state from rank \d\); joined: /.exec(run.output());
  assert.ok(m, run.output());
  const target = Number(m[1]);
  const h = (await history(join(dir, 'out-waiting'))).filter((x) => x.type === 'train');
  assert.deepEqual(h.map((x) => Number(x.step)), Array.from({ length: TOTAL_STEPS }, (_, i) => i + 1));
  assert.ok(h.filter((x) => Number(x.step) > target).every((x) => x.workers === 3));
  const applied = appliedExamples(await readTrace(trace));
  for (const epoch of [0, 1, 2]) {
    const used = [...applied.values()].filter((a) => a.epoch === epoch).flatMap((a) => a.examples);
    assert.equal(new Set(used).size, TRAIN_EXAMPLES, `data epoch ${epoch}`);
    assert.equal(used.length, TRAIN_EXAMPLES, `data epoch ${epoch}`);
  }
  // The replacement took the lost rank's place in a world of 3: same shards, same ring order, so the
  // run equals the fault-free 3-worker run bit for bit (docs/reliability.md).
  await assertSameFinal(join(dir, 'out-waiting'), (await faultFree3()).outDir);
});

test('scale-up: a third worker joining a 2-worker run (max_workers 3) enters at a step boundary', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-elastic-up-'));
  const nats = await startNatsServer();
  t.after(async () => {
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const secret = newJobSecret();
  const job = await makeElasticJob(dir, 'growing', { ...BASE, workers: 2, elastic: { max_workers: 3 } });
  // Started with the others (loading takes seconds here): whichever worker joins third is the standby
  // that enters at a step boundary after the run started.
  const run = startLocal(job, ['--nats', nats.url], { RINGTUNE_JOB_SECRET: secret });
  const extra = await startWorker('growing', nats.url, secret);
  t.after(() => { if (extra.child.exitCode === null) extra.child.kill('SIGKILL'); });
  const code = await run.exit;
  assert.equal(code, 0, `${run.output()}\n--- joiner:\n${extra.output()}`);
  assert.equal(await extra.exit, 0, extra.output());
  const m = /ring epoch 1: 3 workers from step (\d+) \(state from rank 0\); joined: /.exec(run.output());
  assert.ok(m, run.output());
  const target = Number(m[1]);
  assert.ok(target >= 1 && target < TOTAL_STEPS, run.output());
  const h = (await history(join(dir, 'out-growing'))).filter((x) => x.type === 'train');
  assert.deepEqual(h.map((x) => Number(x.step)), Array.from({ length: TOTAL_STEPS }, (_, i) => i + 1));
  for (const x of h) assert.equal(x.workers, Number(x.step) > target ? 3 : 2, `step ${x.step}`);
  // The reference: fault-free with 2 workers (a checkpoint every step), resumed at `target` with 3.
  const ref2 = await runLocal(await makeElasticJob(dir, 'ref2', { ...BASE, workers: 2, checkpointEvery: 1, keep: 100 }));
  assert.equal(ref2.code, 0, ref2.output);
  const resumeDir = join(dir, 'ckpt-ref3');
  await mkdir(resumeDir, { recursive: true });
  await checkpointAt(join(dir, 'out-ref2', 'checkpoints'), target, resumeDir);
  const ref3 = await runLocal(await makeElasticJob(dir, 'ref3', { ...BASE, workers: 3, checkpointDir: resumeDir }), ['--resume']);
  assert.equal(ref3.code, 0, ref3.output);
  await assertSameFinal(join(dir, 'out-growing'), join(dir, 'out-ref3'), 'the reference');
});
