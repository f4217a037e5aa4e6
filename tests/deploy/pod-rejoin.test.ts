/**
 * What the workers Job does when a worker pod fails (deploy/k8s/base/jobset.yaml: backoffLimitPerIndex,
 * podReplacementPolicy Failed; job.yaml: elastic on_loss wait), with real processes: nats-server,
 * `ringtune coordinator --resume-if-present` and two `ringtune worker --rank-hint i` started as the
 * manifests start them. The worker of index 1 is SIGKILLed mid-run; a new `ringtune worker` with the
 * same rank hint (the replacement pod) joins the running job, the ring re-forms with it, and the run
 * finishes with final parameters equal bit for bit to the fault-free run's (docs/reliability.md).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { clusterScratch, history, startLocal, startPodCoordinator, startPodWorker, until } from '../integration/cluster-helpers.ts';
import { assertSameFinal, makeElasticJob } from '../integration/elastic-helpers.ts';

test('a replaced worker pod (same rank hint) rejoins the running job; the run equals the fault-free run bit for bit', { timeout: 240_000 }, async (t) => {
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-pod-rejoin-');
  const total = 24;
  const job = await makeElasticJob(dir, 'podrejoin', {
    workers: 2, maxSteps: total, globalBatch: 12, microBatch: 2, checkpointEvery: 4, heartbeatTimeoutMs: 3000,
    // As deploy/k8s/base/job.yaml: wait for the replacement pod (here far longer than it takes).
    elastic: { on_loss: 'wait', min_workers: 1, wait_timeout_ms: 120_000 },
  });
  // The fault-free reference, alongside (its own NATS): the same job, another output directory.
  const ref = startLocal(job, ['--output', join(dir, 'out-ref')]);
  all.push(ref.child);
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret() };
  // The pods' commands (deploy/k8s/base/jobset.yaml), with free ports instead of fixed ones.
  const worker = (index: number) => startPodWorker('podrejoin', nats.url, index, env, all);
  const coordinator = startPodCoordinator(job, nats.url, env, all);
  const pods = [worker(0), worker(1)];

  await until('step 4', () => {
    assert.equal(coordinator.child.exitCode, null, coordinator.output());
    return /\[coordinator\] step ([4-9]|1\d)\//.test(coordinator.output());
  }, 150_000);
  // Index 1 starts with rank 1 (ranks follow the hints); its pod fails.
  assert.match(coordinator.output(), new RegExp(`rank 1 = [^ ]+-${pods[1]!.child.pid}-`));
  pods[1]!.child.kill('SIGKILL');
  await until('the loss', () => /rank 1 \([^)]+\) lost after step \d+/.test(coordinator.output()), 30_000);
  assert.equal(coordinator.child.exitCode, null, 'a lost worker must not end the run under on_loss wait');
  // The Job's replacement pod: the same command, the same rank hint.
  const replacement = worker(1);

  assert.equal(await coordinator.exit, 0, `${coordinator.output()}\n--- replacement:\n${replacement.output()}`);
  assert.equal(await replacement.exit, 0, replacement.output());
  assert.equal(await pods[0]!.exit, 0, pods[0]!.output());
  const out = coordinator.output();
  const m = /ring epoch 1: 2 workers from step (\d+) \(state from rank 0\); joined: [^:]+: (.*)/.exec(out);
  assert.ok(m, out);
  assert.match(m[2]!, new RegExp(`rank 1 = [^ ]+-${replacement.child.pid}-`), 'the replacement takes rank 1');
  assert.doesNotMatch(out, /resuming from step/, 'the run went on; it was not restarted from a checkpoint');
  const steps = (await history(join(dir, 'out-podrejoin'))).filter((x) => x.type === 'train').map((x) => Number(x.step));
  assert.deepEqual(steps, Array.from({ length: total }, (_, i) => i + 1), 'every step applied once');

  assert.equal(await ref.exit, 0, ref.output());
  await assertSameFinal(join(dir, 'out-podrejoin'), join(dir, 'out-ref'));
});
