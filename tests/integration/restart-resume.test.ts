/**
 * What a JobSet restart does to a run, with real processes: nats-server, `ringtune coordinator
 * --resume-if-present` and two `ringtune worker`s started exactly as the Kubernetes manifests start
 * them. A worker is killed after the first checkpoint (the run aborts: there is no elastic recovery);
 * the same commands started again continue from the job's latest checkpoint and finish the run.
 * Another job given the same checkpoint directory is refused.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { OWNER_FILE } from '../../src/run/checkpoint-dir.ts';
import { latestCheckpoint, readTrainerState } from '../../src/run/trainer-state.ts';
import { clusterScratch, history, makeJob, sleep, startCli, type CliProc } from './cluster-helpers.ts';

test('a restarted coordinator with --resume-if-present continues the run from its checkpoint; another job is refused', { timeout: 180_000 }, async (t) => {
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-restart-');
  const job = await makeJob(dir, 'podrestart', { workers: 2, maxSteps: 24, globalBatch: 16, microBatch: 8, checkpointEvery: 4, heartbeatTimeoutMs: 2000 });
  const out = join(dir, 'out-podrestart');
  const ckptDir = join(out, 'checkpoints');
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret() };
  // The pods' commands (deploy/k8s/base/jobset.yaml), with free ports instead of fixed ones.
  const pods = () => ({
    coordinator: startCli(['coordinator', job, '--resume-if-present', '--nats', nats.url, '--metrics-port', '0'], env, all),
    workers: [0, 1].map((i) => startCli(['worker', '--nats', nats.url, '--job', 'podrestart', '--ring-port', '0', '--metrics-port', '0', '--rank-hint', String(i)], env, all)),
  });

  // Attempt 1: a fresh run (the directory is marked as this job's), a worker lost after a checkpoint.
  const first = pods();
  while (!(await latestCheckpoint(ckptDir).catch(() => undefined))) {
    assert.equal(first.coordinator.child.exitCode, null, `run ended before its first checkpoint:\n${first.coordinator.output()}`);
    await sleep(20);
  }
  assert.deepEqual(JSON.parse(await readFile(join(ckptDir, OWNER_FILE), 'utf8')), { job: 'podrestart' });
  first.workers[1].child.kill('SIGKILL');
  assert.notEqual(await first.coordinator.exit, 0, 'a lost worker aborts the run');
  assert.notEqual(await first.workers[0].exit, 0);
  assert.match(first.coordinator.output(), /failed after step \d+/);
  const saved = await readTrainerState((await latestCheckpoint(ckptDir))!);
  assert.ok(saved.step >= 4 && saved.step < 24, `checkpoint at step ${saved.step}`);

  // Attempt 2: the same commands again, as the JobSet recreates the pods.
  const second = pods();
  const code = await second.coordinator.exit;
  assert.equal(code, 0, second.coordinator.output());
  assert.match(second.coordinator.output(), new RegExp(`resuming from step ${saved.step} \\(checkpoint ${latestCheckpointName(saved.step)}`));
  for (const w of second.workers) assert.equal(await w.exit, 0, w.output());
  const summary = JSON.parse(second.coordinator.output().slice(second.coordinator.output().indexOf('{\n')));
  assert.equal(summary.steps, 24);
  const resumedState = await readTrainerState((await latestCheckpoint(ckptDir))!);
  assert.equal(resumedState.runId, saved.runId, 'the resumed run is the same run');
  // Steps 1..24 once each: those after the checkpoint were dropped and run again.
  const steps = (await history(out)).filter((l) => l.type === 'train').map((l) => Number(l.step));
  assert.deepEqual(steps, Array.from({ length: 24 }, (_, i) => i + 1));

  // Another job pointed at this checkpoint directory: refused before it waits for workers.
  const other = await makeJob(dir, 'otherjob', { workers: 2, maxSteps: 4 });
  const intruder = startCli(['coordinator', other, '--resume-if-present', '--nats', nats.url, '--metrics-port', '0', '--set', `checkpoint.dir=${ckptDir}`], env, all);
  assert.equal(await intruder.exit, 1);
  assert.match(intruder.output(), /belongs to job "podrestart" \(owner\.json\), not "otherjob"/);
  const both = startCli(['coordinator', job, '--resume-if-present', '--resume', '--nats', nats.url, '--metrics-port', '0'], env, all);
  assert.equal(await both.exit, 1);
  assert.match(both.output(), /--resume-if-present decides .* drop --resume/);
});

const latestCheckpointName = (step: number) => `[^)]*step-${String(step).padStart(8, '0')}`;
