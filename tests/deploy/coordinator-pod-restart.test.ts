/**
 * What the coordinator Job does when its pod is killed (deploy/k8s/base/jobset.yaml: backoffLimit,
 * podFailurePolicy; job.yaml: cluster.coordinator_recovery_ms), with real processes: nats-server, the
 * coordinator and two workers started with the rendered overlay's own commands (`kubectl kustomize
 * deploy/k8s/overlays/cpu`; flags for what the pods get from Services and fixed ports). The coordinator
 * is SIGKILLed mid-run (an OOM kill: exit 137); the overlay's podFailurePolicy, evaluated as the Job
 * controller does, says the Job replaces the pod (not a failed Job, so no JobSet restart); the same
 * command started again (the replacement pod, sharing the checkpoint directory) takes the run over
 * with the worker processes kept, and the final parameters equal the fault-free run's bit for bit.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { newJobSecret } from '../../src/control/auth.ts';
import { clusterScratch, history, startLocal, startPodCoordinator, startPodWorker, untilOr } from '../integration/cluster-helpers.ts';
import { assertSameFinal, makeElasticJob } from '../integration/elastic-helpers.ts';
import { podFailureAction, renderKustomize, type Obj } from './helpers.ts';

const OVERLAY = resolve(import.meta.dirname, '../../deploy/k8s/overlays/cpu');

/** The container of replicated job `name` in the rendered JobSet, with its Job spec. */
function podOf(objs: Obj[], name: string): { job: Obj; container: Obj } {
  const js = objs.find((o) => o.kind === 'JobSet')!;
  const job = (js.spec.replicatedJobs as Obj[]).find((r) => r.name === name)!.template.spec;
  return { job, container: job.template.spec.containers[0] };
}

test('a killed coordinator pod is replaced in place and takes the run over; the workers are kept; the run equals the fault-free run bit for bit', { timeout: 600_000 }, async (t) => {
  const started = performance.now();
  const objs = renderKustomize(OVERLAY);
  const coord = podOf(objs, 'coordinator');
  const workers = podOf(objs, 'workers');
  const [command, jobPath, ...flags] = coord.container.args as string[];
  assert.deepEqual([command, jobPath], ['coordinator', '/etc/ringtune/job.yaml']);
  assert.deepEqual(workers.container.args, ['worker']);

  const { dir, nats, all } = await clusterScratch(t, 'ringtune-coord-pod-');
  const total = 20;
  // As job.yaml: elastic wait, and the workers wait its cluster.coordinator_recovery_ms for the new pod.
  const job = await makeElasticJob(dir, 'coordpod', {
    workers: 2, maxSteps: total, globalBatch: 12, microBatch: 2, checkpointEvery: 4, heartbeatTimeoutMs: 3000,
    elastic: { on_loss: 'wait', min_workers: 1, wait_timeout_ms: 120_000 },
  });
  const k8sJob = parse((objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('ringtune-job'))!.data as Obj)['job.yaml']);
  const recoveryMs = k8sJob.cluster.coordinator_recovery_ms as number;
  assert.ok(recoveryMs >= 120_000, `job.yaml: cluster.coordinator_recovery_ms ${recoveryMs}`);
  const spec = parse(await readFile(job, 'utf8'));
  spec.cluster.coordinator_recovery_ms = recoveryMs;
  await writeFile(job, stringify(spec));
  const ref = startLocal(job, ['--output', join(dir, 'out-ref')]);
  all.push(ref.child);
  const env = { ...process.env, RINGTUNE_JOB_SECRET: newJobSecret() };
  // The pods' commands: the job file where the ConfigMap would be mounted; NATS and ports as flags.
  const coordinatorPod = () => startPodCoordinator(job, nats.url, env, all, flags);
  const worker = (index: number) => startPodWorker('coordpod', nats.url, index, env, all, workers.container.args);
  const first = coordinatorPod();
  const pods = [worker(0), worker(1)];
  await untilOr('step 4', () => {
    assert.equal(first.child.exitCode, null, first.output());
    return /\[coordinator\] step ([4-9]|1\d)\//.test(first.output());
  }, 300_000, [first, ...pods]);
  t.diagnostic(`step >= 4 after ${Math.round(performance.now() - started)} ms`);

  // The OOM killer: exit 137. The coordinator Job's podFailurePolicy counts it against backoffLimit and
  // starts a new pod; the Job has not failed, so the JobSet is not restarted and the workers stay.
  first.child.kill('SIGKILL');
  await first.exit;
  const exitCode = 128 + 9;
  assert.equal(podFailureAction(coord.job, coord.container.name, exitCode), 'Count');
  assert.ok(coord.job.backoffLimit >= 1, 'the Job replaces the pod once at least');
  assert.equal(coord.job.podReplacementPolicy, 'Failed', 'the replacement starts once the old pod is gone');
  const killedAt = performance.now();
  const second = coordinatorPod();

  const code = await second.exit;
  const text = second.output();
  assert.equal(code, 0, `${text}\n----\n${pods.map((p) => p.output()).join('\n----\n')}`);
  t.diagnostic(`the replacement finished the run ${Math.round(performance.now() - killedAt)} ms after the kill`);
  for (const p of pods) {
    assert.equal(await p.exit, 0, p.output());
    assert.match(p.output(), /coordinator coordinator-[0-9a-f]+ recovers run/, 'the worker process took the new coordinator');
  }
  assert.match(text, /recovering run [0-9a-f]+: rank 0 = \S+ \(step \d+\), rank 1 = \S+ \(step \d+\) alive/);
  assert.doesNotMatch(text, /resuming from step/, 'taken over, not restarted from a checkpoint');
  const steps = (await history(join(dir, 'out-coordpod'))).filter((x) => x.type === 'train').map((x) => Number(x.step));
  assert.deepEqual(steps, Array.from({ length: total }, (_, i) => i + 1), 'every step recorded once');

  assert.equal(await ref.exit, 0, ref.output());
  await assertSameFinal(join(dir, 'out-coordpod'), join(dir, 'out-ref'));
  t.diagnostic(`done after ${Math.round(performance.now() - started)} ms`);
});
