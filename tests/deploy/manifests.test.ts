/**
 * The Kubernetes manifests as a cluster would get them: `kubectl kustomize` renders each overlay, every
 * object is validated against the Kubernetes API's OpenAPI schemas (the `kubernetes-models` package
 * ships them compiled to validators, so this works offline; the JobSet CRD against its Go types, its
 * Job templates as batch/v1 Jobs), and the containers that run ringtune are checked against the CLI
 * contract (flags and RINGTUNE_* variables of `coordinator` and `worker`). The run's shape: one
 * JobSet that ends with its coordinator, restarts from its checkpoint, replaces a failed worker pod
 * (same index) that rejoins the running job, and admits drains one pod at a time. Also: the Dockerfiles' stages, base images, user, entrypoint and engine check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { JobSchema } from '../../src/config/schema.ts';
import { RING_PROCESS_ENV } from '../../src/collective/ring-options.ts';
import { MAX_CONNECTIONS } from '../../src/collective/stripes.ts';
import { compileJob } from '../../src/config/compile.ts';
import { podFailureAction } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/k8s');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

function kustomize(dir: string): Obj[] {
  const kubectl = ['/usr/bin/kubectl', 'kubectl'].find((k) => spawnSync(k, ['version', '--client'], { stdio: 'ignore' }).status === 0);
  assert.ok(kubectl, 'kubectl not found: install it (it renders the kustomize overlays)');
  const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

/** Validates one object with the kubernetes-models class for its apiVersion/kind; throws with ajv's messages. */
async function validateObject(o: Obj): Promise<void> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const module = `kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`;
  let Model: new (data: Obj) => { validate(): void };
  try {
    Model = (await import(module))[o.kind];
  } catch (cause) {
    throw new Error(`no schema for ${o.apiVersion} ${o.kind} (${module})`, { cause });
  }
  try {
    new Model(o).validate();
  } catch (err) {
    throw new Error(`${o.kind}/${o.metadata?.name}: ${(err as Error).message}`);
  }
}

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const named = (objs: Obj[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} missing`);
  return o;
};
const podSpec = (o: Obj): Obj => o.spec.template.spec;

// --- the CLI contract -------------------------------------------------------------------------------
interface Flag { flag: string; env?: string; value: boolean }
const NATS_CREDENTIALS = ['RINGTUNE_NATS_TOKEN', 'RINGTUNE_NATS_USER', 'RINGTUNE_NATS_PASSWORD'];
/** Flags both roles share: the job secret's file and NATS TLS. */
const CONTROL_FLAGS: Flag[] = [
  { flag: '--secret-file', env: 'RINGTUNE_JOB_SECRET_FILE', value: true },
  { flag: '--nats-ca', env: 'RINGTUNE_NATS_CA', value: true },
  { flag: '--nats-cert', env: 'RINGTUNE_NATS_CERT', value: true },
  { flag: '--nats-key', env: 'RINGTUNE_NATS_KEY', value: true },
];
const CONTRACT: Record<'coordinator' | 'worker', { positional: number; flags: Flag[]; envOnly: string[]; required: string[] }> = {
  coordinator: {
    positional: 1, // <job.yaml>
    flags: [
      { flag: '--nats', env: 'RINGTUNE_NATS_URL', value: true },
      { flag: '--workers', env: 'RINGTUNE_WORKERS', value: true },
      { flag: '--metrics-port', env: 'RINGTUNE_METRICS_PORT', value: true },
      { flag: '--resume', value: false },
      { flag: '--backend', env: 'RINGTUNE_BACKEND', value: true },
      { flag: '--linger-ms', env: 'RINGTUNE_LINGER_MS', value: true },
      { flag: '--overwrite', value: false },
      { flag: '--resume-if-present', value: false },
      ...CONTROL_FLAGS,
    ],
    envOnly: [...NATS_CREDENTIALS, 'RINGTUNE_JOB_SECRET'],
    required: ['--nats'],
  },
  worker: {
    positional: 0,
    flags: [
      { flag: '--nats', env: 'RINGTUNE_NATS_URL', value: true },
      { flag: '--job', env: 'RINGTUNE_JOB', value: true },
      { flag: '--ring-port', env: 'RINGTUNE_RING_PORT', value: true },
      { flag: '--ring-host', env: 'RINGTUNE_RING_HOST', value: true },
      { flag: '--advertise', env: 'RINGTUNE_ADVERTISE', value: true },
      { flag: '--rank-hint', env: 'RINGTUNE_RANK_HINT', value: true },
      { flag: '--metrics-port', env: 'RINGTUNE_METRICS_PORT', value: true },
      { flag: '--backend', env: 'RINGTUNE_BACKEND', value: true },
      { flag: '--threads', env: 'RINGTUNE_THREADS', value: true },
      { flag: '--linger-ms', env: 'RINGTUNE_LINGER_MS', value: true },
      ...CONTROL_FLAGS,
    ],
    envOnly: [...NATS_CREDENTIALS, 'RINGTUNE_JOB_SECRET', 'RINGTUNE_RING_TOKEN'],
    required: ['--nats', '--job'],
  },
};
const DEFAULTS: Record<string, string> = { '--metrics-port': '9464', '--ring-port': '50051', '--ring-host': '0.0.0.0' };

interface Invocation { command: 'coordinator' | 'worker'; positionals: string[]; options: Map<string, string>; env: Map<string, string> }

/** Reads a ringtune container as the CLI would: subcommand, positionals, flags (flags win over env). */
function invocation(c: Obj): Invocation {
  assert.equal(c.command, undefined, `${c.name}: must not override the image's entrypoint (node /app/bin/ringtune.js)`);
  const args: string[] = c.args ?? [];
  const command = args[0];
  assert.ok(command === 'coordinator' || command === 'worker', `${c.name}: unknown subcommand ${command}`);
  const spec = CONTRACT[command];
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    assert.ok(!env.has(e.name), `${c.name}: env ${e.name} set twice`);
    // Kubernetes expands $(VAR) only from variables defined earlier in the list.
    for (const [, ref] of String(e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
      assert.ok(env.has(ref), `${c.name}: ${e.name} refers to $(${ref}), which is not defined before it`);
    }
    env.set(e.name, e.value ?? `<from ${Object.keys(e.valueFrom ?? {}).join()}>`);
  }
  const options = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) { positionals.push(a); continue; }
    const [flag, inline] = a.split(/=(.*)/s, 2);
    const def = spec.flags.find((f) => f.flag === flag);
    assert.ok(def, `${c.name}: ringtune ${command} has no option ${flag}`);
    options.set(flag, def.value ? (inline ?? args[++i]) : 'true');
    assert.ok(options.get(flag) !== undefined, `${c.name}: ${flag} needs a value`);
  }
  assert.equal(positionals.length, spec.positional, `${c.name}: ${command} takes ${spec.positional} positional argument(s), got ${positionals.join(' ')}`);
  for (const [name, value] of env) {
    if (name.startsWith('RINGTUNE_')) {
      const def = spec.flags.find((f) => f.env === name);
      assert.ok(def || spec.envOnly.includes(name), `${c.name}: ringtune ${command} reads no ${name}`);
      if (def && !options.has(def.flag)) options.set(def.flag, value);
    } else if (name.startsWith('MALLOC_')) {
      assert.equal(value, RING_PROCESS_ENV[name], `${c.name}: ${name} differs from RING_PROCESS_ENV`);
    } else if (name === 'CUDA_CACHE_PATH' || name === 'CUDA_CACHE_MAXSIZE') {
      // Read by the CUDA driver (the JIT cache of the GPU image): checked with the GPU overlay.
    } else {
      // Any other variable exists only to be expanded into a RINGTUNE_* one.
      const used = (c.env as Obj[]).some((e) => String(e.value ?? '').includes(`$(${name})`));
      assert.ok(used, `${c.name}: env ${name} is neither a ringtune option nor used by one`);
    }
  }
  for (const r of spec.required) assert.ok(options.has(r), `${c.name}: ${command} needs ${r} (or its variable)`);
  for (const [flag, v] of Object.entries(DEFAULTS)) if (spec.flags.some((f) => f.flag === flag) && !options.has(flag)) options.set(flag, v);
  return { command, positionals, options, env };
}

function portOf(c: Obj, name: string): number {
  const p = (c.ports ?? []).find((x: Obj) => x.name === name);
  assert.ok(p, `${c.name}: no port named ${name}`);
  return p.containerPort;
}

/** A Service that the URL's host names, with the URL's port, selecting pods of `target`. */
function assertServiceReaches(objs: Obj[], url: string, target: Obj) {
  const u = new URL(url);
  const svc = named(objs, 'Service', u.hostname.split('.')[0]);
  assert.ok(svc.spec.ports.some((p: Obj) => p.port === Number(u.port)), `${url}: Service ${svc.metadata.name} has no port ${u.port}`);
  const labels = target.spec.template.metadata.labels;
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(labels[k], v, `Service ${svc.metadata.name} does not select ${target.metadata.name}`);
}

// --- JobSet ----------------------------------------------------------------------------------------
// No schema for the CRD in kubernetes-models (it covers the built-in API only). The JobSet's own
// fields are checked against its Go types (kubernetes-sigs/jobset api/jobset/v1alpha2/jobset_types.go),
// and each replicated Job's template is validated as the batch/v1 Job the controller creates from it.
const JOBSET_FIELDS = {
  spec: ['replicatedJobs', 'network', 'successPolicy', 'failurePolicy', 'startupPolicy', 'suspend', 'coordinator', 'managedBy', 'ttlSecondsAfterFinished'],
  replicatedJob: ['name', 'groupName', 'template', 'replicas', 'dependsOn'],
  network: ['enableDNSHostnames', 'subdomain', 'publishNotReadyAddresses'],
  successPolicy: ['operator', 'targetReplicatedJobs'],
  failurePolicy: ['maxRestarts', 'restartStrategy', 'rules'],
  rule: ['name', 'action', 'onJobFailureReasons', 'onJobFailureMessagePatterns', 'targetReplicatedJobs'],
};
/** Reasons a batch/v1 Job fails with (JobFailed condition), which failurePolicy rules match. */
const JOB_FAILURE_REASONS = ['BackoffLimitExceeded', 'DeadlineExceeded', 'PodFailurePolicy', 'MaxFailedIndexesExceeded'];

/** A replicated Job as the Job the JobSet controller makes of it (<jobset>-<name>-<index>). */
function childJob(js: Obj, name: string): Obj {
  const rj = (js.spec.replicatedJobs as Obj[]).find((r) => r.name === name);
  assert.ok(rj, `JobSet/${js.metadata.name}: no replicated job ${name}`);
  return { apiVersion: 'batch/v1', kind: 'Job', metadata: { ...rj.template.metadata, name: `${js.metadata.name}-${name}-0`, namespace: js.metadata.namespace }, spec: rj.template.spec };
}

async function validateJobSet(js: Obj): Promise<void> {
  const where = `JobSet/${js.metadata?.name}`;
  const onlyKeys = (o: Obj, allowed: string[], what: string) => {
    const extra = Object.keys(o).filter((k) => !allowed.includes(k));
    assert.deepEqual(extra, [], `${where}: ${what} has unknown field(s) ${extra.join(', ')}`);
  };
  assert.equal(js.apiVersion, 'jobset.x-k8s.io/v1alpha2', `${where}: apiVersion`);
  // Pod hostnames are <jobset>-<replicatedJob>-<job index>-<pod index>: a DNS label of at most 63.
  assert.match(js.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${where}: name is not a DNS label`);
  onlyKeys(js.spec, JOBSET_FIELDS.spec, 'spec');
  const rjs = js.spec.replicatedJobs as Obj[];
  assert.ok(Array.isArray(rjs) && rjs.length > 0, `${where}: spec.replicatedJobs must be a non-empty list`);
  const names = rjs.map((r) => r.name);
  assert.equal(new Set(names).size, names.length, `${where}: replicated job names repeat`);
  for (const rj of rjs) {
    onlyKeys(rj, JOBSET_FIELDS.replicatedJob, `replicatedJobs[${rj.name}]`);
    assert.ok(Number.isInteger(rj.replicas ?? 1) && (rj.replicas ?? 1) >= 1, `${where}: replicatedJobs[${rj.name}].replicas must be an integer >= 1`);
    const longest = `${js.metadata.name}-${rj.name}-${(rj.replicas ?? 1) - 1}-${(rj.template.spec.completions ?? 1) - 1}`;
    assert.ok(longest.length <= 63, `${where}: pod hostname ${longest} is longer than 63 characters`);
    await validateObject(childJob(js, rj.name));
  }
  if (js.spec.network) {
    onlyKeys(js.spec.network, JOBSET_FIELDS.network, 'network');
    for (const k of ['enableDNSHostnames', 'publishNotReadyAddresses']) if (k in js.spec.network) assert.equal(typeof js.spec.network[k], 'boolean', `${where}: network.${k}`);
  }
  const targets = (t: unknown, what: string) => {
    if (t === undefined) return;
    assert.ok(Array.isArray(t) && t.every((n) => names.includes(n)), `${where}: ${what} names a replicated job that does not exist: ${JSON.stringify(t)}`);
  };
  if (js.spec.successPolicy) {
    onlyKeys(js.spec.successPolicy, JOBSET_FIELDS.successPolicy, 'successPolicy');
    assert.ok(['All', 'Any'].includes(js.spec.successPolicy.operator), `${where}: successPolicy.operator must be All or Any`);
    targets(js.spec.successPolicy.targetReplicatedJobs, 'successPolicy.targetReplicatedJobs');
  }
  const fp = js.spec.failurePolicy;
  if (fp) {
    onlyKeys(fp, JOBSET_FIELDS.failurePolicy, 'failurePolicy');
    assert.ok(Number.isInteger(fp.maxRestarts ?? 0) && (fp.maxRestarts ?? 0) >= 0, `${where}: failurePolicy.maxRestarts must be an integer >= 0`);
    if (fp.restartStrategy !== undefined) assert.ok(['Recreate', 'BlockingRecreate'].includes(fp.restartStrategy), `${where}: failurePolicy.restartStrategy`);
    for (const r of fp.rules ?? []) {
      onlyKeys(r, JOBSET_FIELDS.rule, 'failurePolicy.rules[]');
      assert.match(r.name, /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, `${where}: failurePolicy rule name ${r.name}`);
      assert.ok(['FailJobSet', 'RestartJobSet', 'RestartJobSetAndIgnoreMaxRestarts'].includes(r.action), `${where}: failurePolicy rule ${r.name}: action ${r.action}`);
      for (const reason of r.onJobFailureReasons ?? []) assert.ok(JOB_FAILURE_REASONS.includes(reason), `${where}: rule ${r.name}: unknown job failure reason ${reason}`);
      targets(r.targetReplicatedJobs, `failurePolicy rule ${r.name} targetReplicatedJobs`);
    }
  }
}

/**
 * A failed worker pod is replaced and rejoins (docs/deploy.md "What restarts a run"): the fields the
 * API server checks together (batch/v1 Job validation, which the schema alone does not express), and
 * a job spec that waits for the replacement long enough for a pod restart.
 */
function checkWorkerReplacement(workers: Obj, spec: ReturnType<typeof JobSchema.parse>) {
  const w = workers.spec;
  const where = workers.metadata.name;
  assert.ok(Number.isInteger(w.backoffLimitPerIndex) && w.backoffLimitPerIndex >= 1, `${where}: backoffLimitPerIndex must be >= 1 (a failed worker pod is replaced)`);
  // backoffLimitPerIndex: only for Indexed Jobs of restartPolicy Never; backoffLimit left to its default.
  assert.equal(w.completionMode, 'Indexed', `${where}: backoffLimitPerIndex needs completionMode Indexed`);
  assert.equal(w.backoffLimit, undefined, `${where}: backoffLimit would cap the per-index retries for the whole Job`);
  assert.ok(Number.isInteger(w.maxFailedIndexes) && w.maxFailedIndexes >= 0 && w.maxFailedIndexes <= w.completions, `${where}: maxFailedIndexes`);
  assert.equal(w.maxFailedIndexes, 0, `${where}: an index past its limit must fail the Job (a run short of a rank for good is restarted)`);
  // With a podFailurePolicy the only allowed value; it also keeps two pods from sharing a hostname.
  assert.equal(w.podReplacementPolicy, 'Failed', `${where}: podReplacementPolicy`);
  for (const r of w.podFailurePolicy.rules as Obj[]) assert.ok(['FailJob', 'FailIndex', 'Ignore', 'Count'].includes(r.action), `${where}: podFailurePolicy action ${r.action}`);
  // The replacement keeps its rank hint and its ring address: both come from the completion index.
  // The job waits for it instead of failing.
  assert.equal(spec.elastic?.on_loss, 'wait', 'job.yaml: elastic.on_loss must be wait (a replaced worker pod rejoins)');
  const waitMs = spec.elastic!.wait_timeout_ms!;
  assert.ok(waitMs >= 300_000, `job.yaml: elastic.wait_timeout_ms ${waitMs} is shorter than a pod restart with an image pull`);
  assert.ok(waitMs <= spec.cluster.join_timeout_ms!, 'job.yaml: elastic.wait_timeout_ms beyond cluster.join_timeout_ms');
  const minWorkers = spec.elastic!.min_workers ?? w.completions;
  assert.ok(minWorkers >= 1 && minWorkers <= w.completions, `job.yaml: elastic.min_workers ${minWorkers}`);
  assert.ok((spec.elastic!.max_workers ?? w.completions) === w.completions, 'job.yaml: elastic.max_workers must equal the workers Job size (no pods beyond the completions)');
}

const envVar = (c: Obj, name: string): Obj | undefined => (c.env as Obj[] | undefined)?.find((e) => e.name === name);

/** What any overlay must get right; returns the pieces the overlay-specific tests look at. */
async function checkOverlay(objs: Obj[]) {
  // One run = one JobSet: no StatefulSet (workers that Kubernetes restarts after the run is done).
  assert.deepEqual(byKind(objs, 'StatefulSet'), []);
  const [js, ...more] = byKind(objs, 'JobSet');
  assert.ok(js && more.length === 0, 'exactly one JobSet');
  await validateJobSet(js);
  const coordJob = childJob(js, 'coordinator');
  const workers = childJob(js, 'workers');
  // JSON patches in overlays and components address the workers by index: keep the order.
  assert.deepEqual(js.spec.replicatedJobs.map((r: Obj) => r.name), ['coordinator', 'workers']);
  for (const r of js.spec.replicatedJobs) assert.equal(r.replicas, 1, `replicated job ${r.name}: one Job`);
  const nats = named(objs, 'Deployment', 'ringtune-nats');
  const ringtuneContainers = [coordJob, workers].flatMap((o) => podSpec(o).containers as Obj[]);
  assert.equal(ringtuneContainers.length, 2);
  const [coord, worker] = ringtuneContainers.map(invocation);
  assert.equal(coord.command, 'coordinator');
  assert.equal(worker.command, 'worker');

  // The coordinator's job file is job.yaml of a mounted ConfigMap, and it is a valid job spec.
  const [coordC] = podSpec(coordJob).containers as Obj[];
  const [workerC] = podSpec(workers).containers as Obj[];
  const jobPath = coord.positionals[0];
  const mount = (coordC.volumeMounts as Obj[]).find((m) => jobPath === `${m.mountPath}/job.yaml`);
  assert.ok(mount, `coordinator: ${jobPath} is not on a mounted volume`);
  const vol = (podSpec(coordJob).volumes as Obj[]).find((v) => v.name === mount.name);
  assert.ok(vol?.configMap, `coordinator: volume ${mount.name} is not a ConfigMap`);
  const cm = named(objs, 'ConfigMap', vol.configMap.name);
  const spec = JobSchema.parse(parseYaml(cm.data['job.yaml']));
  for (const p of [spec.model, spec.data.train, spec.output, spec.checkpoint.dir ?? '/data']) assert.match(p, /^\/data\//, `${p} is not on the shared volume`);
  for (const o of [coordJob, workers]) {
    const c = podSpec(o).containers[0];
    const dataMount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === '/data');
    assert.ok(dataMount, `${o.metadata.name}: /data not mounted`);
    const claim = (podSpec(o).volumes as Obj[]).find((v) => v.name === dataMount.name)?.persistentVolumeClaim?.claimName;
    named(objs, 'PersistentVolumeClaim', claim);
  }

  // The job's name is the JobSet's: the workers read it from the label the JobSet puts on their pods.
  assert.equal(js.metadata.name, spec.name, "the JobSet's name must equal job.yaml's name");
  assert.equal(envVar(workerC, 'JOBSET_NAME')?.valueFrom?.fieldRef?.fieldPath, "metadata.labels['jobset.sigs.k8s.io/jobset-name']");
  assert.equal(worker.options.get('--job'), '$(JOBSET_NAME)');

  // A restarted run resumes by itself; a finite run: the JobSet succeeds with its coordinator.
  assert.ok(coord.options.has('--resume-if-present'), 'the coordinator must resume a restarted run (--resume-if-present)');
  assert.deepEqual(js.spec.successPolicy, { operator: 'All', targetReplicatedJobs: ['coordinator'] });

  // Sizes agree: an Indexed Job of exactly --workers pods, all started at once.
  const n = Number(coord.options.get('--workers'));
  assert.equal(workers.spec.completionMode, 'Indexed');
  assert.equal(workers.spec.completions, n, 'workers completions != coordinator --workers');
  assert.equal(workers.spec.parallelism, n, 'workers parallelism != coordinator --workers');
  assert.equal(coordJob.spec.completions, 1);

  // Failures (jobset.yaml "Failures"): pods are replaced inside their Job wherever the run goes on, so the
  // workers outlive a coordinator pod and vice versa; only a failed run fails a Job. Evaluated as the Job
  // controller evaluates podFailurePolicy (helpers.ts podFailureAction).
  for (const [o, c] of [[coordJob, coordC], [workers, workerC]] as const) {
    assert.equal(podSpec(o).restartPolicy, 'Never', `${o.metadata.name}: podFailurePolicy needs restartPolicy Never`);
    assert.ok(o.spec.podFailurePolicy?.rules, `${o.metadata.name}: no podFailurePolicy`);
    // Never two pods of one index (or two coordinators) at once; the only value allowed with a podFailurePolicy.
    assert.equal(o.spec.podReplacementPolicy, 'Failed', `${o.metadata.name}: podReplacementPolicy`);
    const act = (code: number, disruption = false) => podFailureAction(o.spec, c.name, code, disruption);
    assert.equal(act(143, true), 'Ignore', `${o.metadata.name}: a drained pod (DisruptionTarget) must be replaced without counting it`);
    assert.equal(act(137, true), 'Ignore', `${o.metadata.name}: a pod of a lost node (DisruptionTarget) must be replaced without counting it`);
    assert.equal(act(143), 'Ignore', `${o.metadata.name}: a pod stopped on SIGTERM (exit 143) must be replaced without counting it`);
    // Time to finish the step (and the checkpoint a whole-run stop asks for).
    assert.ok(podSpec(o).terminationGracePeriodSeconds >= 120, `${o.metadata.name}: terminationGracePeriodSeconds`);
  }
  const coordAct = (code: number) => podFailureAction(coordJob.spec, coordC.name, code);
  // A killed coordinator (SIGKILL, OOM: 137) is a pod restart, not a JobSet restart: counted against its
  // Job's backoffLimit, and the replacement takes the run over from the shared checkpoint directory.
  assert.equal(coordAct(137), 'Count', `${coordJob.metadata.name}: a killed coordinator (exit 137) must be replaced in place`);
  assert.ok(Number.isInteger(coordJob.spec.backoffLimit) && coordJob.spec.backoffLimit >= 1, `${coordJob.metadata.name}: backoffLimit must be >= 1 (a killed coordinator is replaced)`);
  // A failed run (the coordinator exits 1 naming why) fails the Job: another coordinator would not help.
  assert.equal(coordAct(1), 'FailJob', `${coordJob.metadata.name}: a failed run (exit 1) must fail the Job`);
  assert.ok(coordJob.spec.completionMode !== 'Indexed' && coordJob.spec.backoffLimitPerIndex === undefined, `${coordJob.metadata.name}: one pod, backoffLimit`);
  const workerAct = (code: number) => podFailureAction(workers.spec, workerC.name, code);
  for (const code of [1, 137]) assert.equal(workerAct(code), 'Count', `${workers.metadata.name}: a crashed worker (exit ${code}) is replaced, counted per index`);
  checkWorkerReplacement(workers, spec);
  // The takeover: the replacement coordinator reads coordinator-session.json from checkpoint.dir (on the
  // PVC both pods mount, checked above) and the workers wait cluster.coordinator_recovery_ms for it.
  const compiled = compileJob(parseYaml(cm.data['job.yaml']), jobPath);
  assert.ok(compiled.cluster.coordinatorRecoveryMs >= 120_000,
    `job.yaml: cluster.coordinator_recovery_ms ${compiled.cluster.coordinatorRecoveryMs} does not cover a replacement pod (Job back-off, scheduling, an image pull)`);
  // Every Job failure is a failed run: a counted restart, so a run that keeps failing ends with the JobSet failed.
  const fp = js.spec.failurePolicy;
  assert.ok(fp.maxRestarts >= 1, 'a failed run restarts from its checkpoint at least once');
  for (const reason of ['PodFailurePolicy', 'BackoffLimitExceeded', 'MaxFailedIndexesExceeded']) {
    const rule = (fp.rules as Obj[] | undefined ?? []).find((r) => !r.onJobFailureReasons || r.onJobFailureReasons.includes(reason));
    assert.ok(!rule || rule.action === 'RestartJobSet' || rule.action === 'FailJobSet', `JobSet: a Job failed with ${reason} (a failed run) must count against maxRestarts, not ${rule?.action}`);
  }

  // A drain takes one pod of the run at a time: minAvailable = coordinator + workers - 1.
  const pdbs = byKind(objs, 'PodDisruptionBudget');
  assert.equal(pdbs.length, 1);
  assert.equal(pdbs[0].metadata.name, js.metadata.name);
  assert.deepEqual(pdbs[0].spec.selector, { matchLabels: { 'jobset.sigs.k8s.io/jobset-name': js.metadata.name } });
  assert.equal(pdbs[0].spec.minAvailable, n, 'PDB minAvailable != number of workers');
  assert.equal(pdbs[0].spec.maxUnavailable, undefined, 'pods of Jobs take only an integer minAvailable');

  // Timeouts fit pods on real hardware and the probes: the coordinator names a hung rank before the
  // kubelet kills its pod; the defaults (5 s heartbeat timeout) are for processes on one machine.
  const liveness = (c: Obj) => c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold * 1000;
  assert.ok(spec.cluster.heartbeat_timeout_ms >= 30_000, `cluster.heartbeat_timeout_ms ${spec.cluster.heartbeat_timeout_ms} is too short for pods`);
  for (const c of [coordC, workerC]) assert.ok(spec.cluster.heartbeat_timeout_ms < liveness(c), `${c.name}: heartbeat timeout >= liveness probe window`);
  assert.ok(spec.cluster.join_timeout_ms >= 600_000, 'cluster.join_timeout_ms must cover image pulls and scheduling');
  assert.ok(spec.cluster.progress_timeout_ms >= 1_200_000, 'cluster.progress_timeout_ms must cover a checkpoint or an evaluation');
  assert.ok(spec.cluster.collective_timeout_ms >= 300_000, 'cluster.collective_timeout_ms must cover the first (compiling) GPU steps');

  // Ring addresses: JobSet's per-pod DNS names, the rank hint from the completion index.
  const ringPort = Number(worker.options.get('--ring-port'));
  assert.equal(portOf(workerC, 'ring'), ringPort);
  assert.equal(js.spec.network?.enableDNSHostnames, true);
  assert.equal(js.spec.network?.subdomain, undefined, 'the advertised address assumes the default subdomain (the JobSet name)');
  assert.equal(worker.options.get('--advertise'), `$(JOBSET_NAME)-workers-0-$(RINGTUNE_RANK_HINT).$(JOBSET_NAME).$(NAMESPACE).svc.cluster.local:${ringPort}`);
  const fieldPath = (name: string) => envVar(workerC, name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(fieldPath('NAMESPACE'), 'metadata.namespace');
  assert.equal(fieldPath('RINGTUNE_RANK_HINT'), "metadata.annotations['batch.kubernetes.io/job-completion-index']");
  // Native engine threads follow the worker's CPU request, in whole cores.
  const threadsRef = envVar(workerC, 'RINGTUNE_THREADS')?.valueFrom?.resourceFieldRef;
  assert.deepEqual({ ...threadsRef, divisor: String(threadsRef?.divisor) }, { containerName: workerC.name, resource: 'requests.cpu', divisor: '1' });
  assert.ok(workerC.resources?.requests?.cpu, 'workers request no CPU for RINGTUNE_THREADS to follow');
  for (const inv of [coord, worker]) assertServiceReaches(objs, inv.options.get('--nats')!, nats);
  const natsToken = envVar(podSpec(nats).containers[0], 'NATS_TOKEN')?.valueFrom?.secretKeyRef;
  assert.ok(natsToken, 'nats-server gets no token from a Secret');
  for (const o of [coordJob, workers]) {
    const ref = envVar(podSpec(o).containers[0], 'RINGTUNE_NATS_TOKEN')?.valueFrom?.secretKeyRef;
    assert.deepEqual(ref, natsToken, `${o.metadata.name}: NATS token is not the server's`);
  }

  // Metrics: probes, annotations and the Service/ServiceMonitor port all point at --metrics-port.
  for (const [o, inv] of [[coordJob, coord], [workers, worker]] as const) {
    const c = podSpec(o).containers[0];
    const port = Number(inv.options.get('--metrics-port'));
    assert.equal(portOf(c, 'metrics'), port);
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(probe.httpGet.path, '/healthz');
      assert.ok(probe.httpGet.port === 'metrics' || probe.httpGet.port === port);
    }
    const a = o.spec.template.metadata.annotations;
    assert.deepEqual([a['prometheus.io/scrape'], a['prometheus.io/port'], a['prometheus.io/path']], ['true', String(port), '/metrics']);
    assert.equal(podSpec(o).securityContext.runAsNonRoot, true);
    assertServiceReaches(objs, `http://${o === coordJob ? 'ringtune-coordinator' : 'ringtune-workers'}:${port}`, o);
  }

  // NetworkPolicy: the ring port admits only workers; NATS admits ringtune pods; metrics admit Prometheus.
  const policies = byKind(objs, 'NetworkPolicy');
  const policyFor = (o: Obj) => {
    const labels = o.spec.template.metadata.labels;
    const p = policies.filter((np) => Object.entries(np.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v));
    assert.equal(p.length, 1, `${o.metadata.name}: ${p.length} NetworkPolicies`);
    return p[0].spec.ingress as Obj[];
  };
  const rulesForPort = (rules: Obj[], port: number) => rules.filter((r) => r.ports.some((p: Obj) => p.port === port));
  const ringRules = rulesForPort(policyFor(workers), ringPort);
  assert.equal(ringRules.length, 1);
  const ringPorts = ringRules[0].ports.find((p: Obj) => p.port === ringPort);
  assert.equal(ringPorts.endPort, ringPort + MAX_CONNECTIONS - 1, 'every stripe port of cluster.ring_connections (ring port + k) admitted');
  assert.deepEqual(ringRules[0].from, [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': workers.spec.template.metadata.labels['app.kubernetes.io/name'] } } }]);
  const natsRules = rulesForPort(policyFor(nats), 4222);
  for (const o of [coordJob, workers]) {
    const labels = o.spec.template.metadata.labels;
    assert.ok(natsRules.some((r) => r.from.some((f: Obj) => Object.entries(f.podSelector?.matchLabels ?? { x: 'none' }).every(([k, v]) => labels[k] === v))),
      `${o.metadata.name} cannot reach NATS`);
  }
  for (const o of [coordJob, workers]) assert.equal(rulesForPort(policyFor(o), 9464).length, 1, `${o.metadata.name}: metrics port closed to Prometheus`);
  return { js, coordJob, workers, worker, coordC, workerC };
}

/** The overlay's one `images:` entry (kustomization.yaml) and the image tag of the version in package.json. */
function imagesEntry(dir: string): Obj {
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
  assert.equal(k.images?.length, 1, `${dir}: one images: entry`);
  assert.equal(k.images[0].name, 'ringtune');
  assert.equal(k.images[0].newTag, undefined, `${dir}: the entry must keep the tags (a CPU coordinator next to GPU workers)`);
  return k.images[0];
}
const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
/** Qualified: the first path component is a registry host (has a dot or a port, or is localhost). */
const qualified = (image: string) => /^([^/]*[.:][^/]*|localhost)\//.test(image);

/** Every image is qualified; ringtune's come from the overlay's images: entry; the coordinator is on the CPU image. */
function checkImages(objs: Obj[], dir: string, workerFlavour: 'cpu' | 'gpu') {
  const repo = imagesEntry(dir).newName;
  const pods = [...byKind(objs, 'Deployment').map((d) => d.spec), ...byKind(objs, 'JobSet').flatMap((js) => js.spec.replicatedJobs.map((r: Obj) => r.template.spec))];
  for (const p of pods) for (const c of [...(p.template.spec.initContainers ?? []), ...p.template.spec.containers]) assert.ok(qualified(c.image), `${c.name}: image ${c.image} is not qualified`);
  const { coordJob, workers } = { coordJob: childJob(byKind(objs, 'JobSet')[0], 'coordinator'), workers: childJob(byKind(objs, 'JobSet')[0], 'workers') };
  for (const c of [...podSpec(coordJob).initContainers, ...podSpec(coordJob).containers]) assert.equal(c.image, `${repo}:${VERSION}-cpu`, `${c.name}: the coordinator runs no model: the CPU image`);
  assert.equal(podSpec(workers).containers[0].image, `${repo}:${VERSION}-${workerFlavour}`);
}

for (const overlay of ['cpu', 'gpu'] as const) {
  test(`overlays/${overlay}: renders, validates against the Kubernetes API schemas, matches the CLI contract`, async () => {
    const dir = join(K8S, 'overlays', overlay);
    const objs = kustomize(dir);
    assert.deepEqual([...new Set(objs.map((o) => o.kind))].sort(),
      ['ConfigMap', 'Deployment', 'JobSet', 'Namespace', 'NetworkPolicy', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Service']);
    for (const o of objs) if (o.kind !== 'JobSet') await validateObject(o); // the JobSet: validateJobSet in checkOverlay
    for (const o of objs) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'ringtune', `${o.kind}/${o.metadata.name}`);
    const { worker, workerC, workers } = await checkOverlay(objs);
    checkImages(objs, dir, overlay);
    const res = workerC.resources;
    if (overlay === 'gpu') {
      assert.equal(String(res.limits['nvidia.com/gpu']), '1');
      assert.equal(worker.options.get('--backend'), 'tensorflow-gpu');
      // The CUDA JIT cache on a writable emptyDir ($HOME is on the read-only root filesystem).
      const cachePath = envVar(workerC, 'CUDA_CACHE_PATH')?.value;
      const m = (workerC.volumeMounts as Obj[]).find((v) => v.mountPath === cachePath);
      assert.ok(m && !m.readOnly, `CUDA_CACHE_PATH ${cachePath} is not a mounted volume`);
      assert.ok((podSpec(workers).volumes as Obj[]).find((v) => v.name === m.name)?.emptyDir, 'the CUDA cache volume is not an emptyDir');
      assert.ok(podSpec(workers).tolerations?.some((t: Obj) => t.key === 'nvidia.com/gpu'));
    } else {
      assert.equal(res.limits['nvidia.com/gpu'], undefined);
      assert.equal(worker.options.get('--backend'), undefined);
      assert.equal(envVar(workerC, 'CUDA_CACHE_PATH'), undefined);
    }
  });
}

test('examples/custom (the overlay docs/deploy.md builds on): its job name and 4 GPU workers everywhere, its image, Kueue, pull secret, ServiceMonitor', async () => {
  const dir = join(K8S, 'examples', 'custom');
  const objs = kustomize(dir);
  for (const o of objs) if (!['ServiceMonitor', 'PrometheusRule', 'JobSet'].includes(o.kind)) await validateObject(o); // CRDs: checked by hand
  const { js, worker, workerC, coordJob, workers } = await checkOverlay(objs);
  assert.equal(js.metadata.name, 'llama-support');
  assert.equal(workers.spec.completions, 4);
  assert.equal(worker.options.get('--backend'), 'tensorflow-gpu');
  assert.equal(String(workerC.resources.limits['nvidia.com/gpu']), '1');
  checkImages(objs, dir, 'gpu');
  assert.equal(imagesEntry(dir).newName, 'registry.example.com/team/ringtune');
  assert.equal(js.metadata.labels['kueue.x-k8s.io/queue-name'], 'ringtune', 'Kueue admits the JobSet as one gang');
  for (const o of [coordJob, workers]) assert.deepEqual(podSpec(o).imagePullSecrets, [{ name: 'ringtune-pull' }]);
  assert.equal(byKind(objs, 'ServiceMonitor').length, 1);
});

test('the JobSet check is not vacuous: unknown fields, bad enums, a missing target and a broken pod template are refused', async () => {
  const objs = kustomize(join(K8S, 'overlays', 'cpu'));
  const js = () => structuredClone(byKind(objs, 'JobSet')[0]);
  await validateJobSet(js());
  const typo = js();
  typo.spec.sucessPolicy = typo.spec.successPolicy;
  await assert.rejects(validateJobSet(typo), /unknown field\(s\) sucessPolicy/);
  const op = js();
  op.spec.successPolicy.operator = 'Every';
  await assert.rejects(validateJobSet(op), /operator must be All or Any/);
  const target = js();
  target.spec.successPolicy.targetReplicatedJobs = ['leader'];
  await assert.rejects(validateJobSet(target), /names a replicated job that does not exist/);
  const reason = js();
  reason.spec.failurePolicy.rules[0].onJobFailureReasons = ['Evicted'];
  await assert.rejects(validateJobSet(reason), /unknown job failure reason Evicted/);
  const pod = js();
  pod.spec.replicatedJobs[1].template.spec.template.spec.containers[0].ports[0].containerPort = 'fifty';
  await assert.rejects(validateJobSet(pod), /containerPort must be integer/);
  const long = js();
  long.metadata.name = 'a-job-name-long-enough-to-push-the-pod-hostnames-past-63';
  await assert.rejects(validateJobSet(long), /longer than 63 characters/);
});

test('the shape check is not vacuous: an overlay that renames the job or resizes it without the replacements block is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-kustomize-'));
  try {
    const overlay = (patch: string) => {
      writeFileSync(join(dir, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
        `resources: [${JSON.stringify(relative(dir, join(K8S, 'overlays/cpu')))}]`,
        'patches:', '  - target: {kind: JobSet}', '    patch: |', ...patch.split('\n').map((l) => `      ${l}`), '',
      ].join('\n'));
      return kustomize(dir);
    };
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /spec/replicatedJobs/1/template/spec/completions, value: 3}')), /workers parallelism != coordinator --workers|completions != coordinator --workers/);
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /metadata/name, value: other-job}')), /the JobSet's name must equal job.yaml's name/);
    await assert.rejects(checkOverlay(overlay('- {op: remove, path: /spec/replicatedJobs/1/template/spec/podFailurePolicy}')), /workers-0: no podFailurePolicy/);
    await assert.rejects(checkOverlay(overlay('- {op: remove, path: /spec/replicatedJobs/0/template/spec/template/spec/containers/0/args/2}')), /--resume-if-present/);
    await assert.rejects(checkOverlay(overlay('- {op: remove, path: /spec/replicatedJobs/1/template/spec/backoffLimitPerIndex}')), /backoffLimitPerIndex must be >= 1/);
    await assert.rejects(checkOverlay(overlay('- {op: remove, path: /spec/replicatedJobs/1/template/spec/podReplacementPolicy}')), /podReplacementPolicy/);
    // The coordinator restarted in place, not the JobSet; a failed run still fails the Job, counted.
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /spec/replicatedJobs/0/template/spec/backoffLimit, value: 0}')), /backoffLimit must be >= 1/);
    await assert.rejects(checkOverlay(overlay('- {op: remove, path: /spec/replicatedJobs/0/template/spec/podFailurePolicy/rules/0}')), /a failed run \(exit 1\) must fail the Job/);
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /spec/replicatedJobs/0/template/spec/podFailurePolicy/rules/2/action, value: FailJob}')), /stopped on SIGTERM \(exit 143\) must be replaced/);
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /spec/replicatedJobs/1/template/spec/podFailurePolicy/rules/0/action, value: FailJob}')), /workers-0: a drained pod \(DisruptionTarget\)/);
    await assert.rejects(checkOverlay(overlay('- {op: replace, path: /spec/failurePolicy/rules/0/action, value: RestartJobSetAndIgnoreMaxRestarts}')), /must count against maxRestarts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the schema validation is not vacuous: broken objects are refused', async () => {
  const objs = kustomize(join(K8S, 'overlays', 'cpu'));
  const job = structuredClone(childJob(byKind(objs, 'JobSet')[0], 'coordinator'));
  delete job.spec.template.spec.containers;
  await assert.rejects(validateObject(job), /must have required property containers/);
  const pdb = structuredClone(byKind(objs, 'PodDisruptionBudget')[0]);
  pdb.spec.selector.matchLabels = 'all';
  await assert.rejects(validateObject(pdb), /matchLabels must be object/);
  const np = structuredClone(named(objs, 'NetworkPolicy', 'ringtune-workers'));
  np.spec.ingress[0].ports[0].protocol = 7;
  await assert.rejects(validateObject(np), /protocol must be string/);
  await assert.rejects(validateObject({ apiVersion: 'v1', kind: 'Nonsense', metadata: { name: 'x' } }), /no schema/);
});

test('the contract check is not vacuous: an unknown variable, flag or a dangling $(VAR) is refused', () => {
  const objs = kustomize(join(K8S, 'overlays', 'cpu'));
  const c = () => structuredClone(podSpec(childJob(byKind(objs, 'JobSet')[0], 'workers')).containers[0]);
  const typo = c();
  typo.env.find((e: Obj) => e.name === 'RINGTUNE_JOB').name = 'RINGTUNE_JOB_NAME';
  assert.throws(() => invocation(typo), /reads no RINGTUNE_JOB_NAME/);
  const flag = c();
  flag.args = ['worker', '--ring-prot', '1'];
  assert.throws(() => invocation(flag), /no option --ring-prot/);
  const dangling = c();
  dangling.env = dangling.env.filter((e: Obj) => e.name !== 'JOBSET_NAME');
  assert.throws(() => invocation(dangling), /\$\(JOBSET_NAME\), which is not defined before it/);
});

test('the manifests use only options the real CLI declares (ringtune <cmd> --help)', () => {
  const objs = kustomize(join(K8S, 'overlays', 'gpu'));
  const js = byKind(objs, 'JobSet')[0];
  for (const o of [childJob(js, 'coordinator'), childJob(js, 'workers')]) {
    const c = podSpec(o).containers[0];
    const inv = invocation(c);
    // Commander wraps help at 80 columns when piped: compare with whitespace folded.
    const help = execFileSync(process.execPath, [join(ROOT, 'bin/ringtune.js'), inv.command, '--help'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
    for (const flag of inv.options.keys()) assert.ok(help.includes(`${flag} `), `ringtune ${inv.command} --help does not list ${flag}`);
    for (const [name] of inv.env) {
      if (!name.startsWith('RINGTUNE_') || CONTRACT[inv.command].envOnly.includes(name)) continue;
      assert.ok(help.includes(`env: ${name}`), `ringtune ${inv.command} --help does not list ${name}`);
    }
  }
});

test('components/servicemonitor: selects the coordinator and worker Services by their metrics port, keeps our job label', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-kustomize-'));
  try {
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
      // kustomize takes only relative paths to other kustomizations.
      `resources: [${JSON.stringify(relative(dir, join(K8S, 'overlays/cpu')))}]`,
      `components: [${JSON.stringify(relative(dir, join(K8S, 'components/servicemonitor')))}]`, '',
    ].join('\n'));
    const objs = kustomize(dir);
    // No schema for the CRD here (kubernetes-models covers the built-in API only): check what it must select.
    const [sm] = byKind(objs, 'ServiceMonitor');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(sm.metadata.namespace, 'ringtune');
    assert.equal(sm.spec.endpoints[0].interval, '5s'); // = the dashboard datasource's timeInterval
    const selected = byKind(objs, 'Service').filter((s) => {
      const l = s.metadata.labels ?? {};
      return Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => l[k] === v)
        && sm.spec.selector.matchExpressions.every((e: Obj) => e.operator === 'In' && e.values.includes(l[e.key]));
    });
    assert.deepEqual(selected.map((s) => s.metadata.name).sort(), ['ringtune-coordinator', 'ringtune-workers']);
    for (const s of selected) assert.ok(s.spec.ports.some((p: Obj) => p.name === sm.spec.endpoints[0].port && p.port === 9464));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('components/servicemonitor: a PrometheusRule with exactly the alerts docs/metrics.md lists, each valid PromQL (promtool)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-rules-'));
  try {
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
      `resources: [${JSON.stringify(relative(dir, join(K8S, 'overlays/cpu')))}]`,
      `components: [${JSON.stringify(relative(dir, join(K8S, 'components/servicemonitor')))}]`, '',
    ].join('\n'));
    const [rule] = byKind(kustomize(dir), 'PrometheusRule');
    // The CRD's schema, by hand (kubernetes-models covers the built-in API only).
    assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(rule.metadata.namespace, 'ringtune');
    assert.ok(Array.isArray(rule.spec.groups) && rule.spec.groups.length > 0);
    const alerts: string[] = [];
    for (const g of rule.spec.groups) {
      assert.equal(typeof g.name, 'string');
      for (const r of g.rules) {
        assert.deepEqual(Object.keys(r).filter((k) => !['alert', 'expr', 'for', 'labels', 'annotations'].includes(k)), [], `${r.alert}: unknown keys`);
        assert.match(r.alert, /^Ringtune[A-Za-z]+$/);
        assert.equal(typeof r.expr, 'string');
        if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
        assert.ok(['critical', 'warning', 'info'].includes(r.labels?.severity), `${r.alert}: severity`);
        assert.ok(r.annotations?.summary && r.annotations?.description, `${r.alert}: summary and description`);
        assert.match(r.expr, /ringtune_/, `${r.alert}: no ringtune metric`);
        assert.doesNotMatch(r.expr, /\bjob\b/, `${r.alert}: uses the scrape job label instead of ringtune_job`);
        alerts.push(r.alert);
      }
    }
    const doc = readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8');
    const documented = [...doc.slice(doc.indexOf('## Alerts')).matchAll(/^\| `(Ringtune\w+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual([...alerts].sort(), [...documented].sort(), 'alerts in the PrometheusRule vs docs/metrics.md "Alerts"');
    // Every expression and template through Prometheus' own checker.
    writeFileSync(join(dir, 'rules.yml'), JSON.stringify({ groups: rule.spec.groups }));
    const out = execFileSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
    assert.match(out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// --- Dockerfiles ------------------------------------------------------------------------------------
interface Stage { from: string; name?: string; instructions: [string, string][] }

/** Splits a Dockerfile into stages of [INSTRUCTION, rest] with continuations joined and ARGs resolved. */
function parseDockerfile(path: string): Stage[] {
  const text = readFileSync(path, 'utf8').replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, ins, rest] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    const expanded = rest.replace(/\$\{(\w+)\}/g, (_, n: string) => args.get(n) ?? `\${${n}}`);
    if (ins.toUpperCase() === 'ARG' && stages.length === 0) {
      const [n, v] = rest.split('=');
      args.set(n, v);
    } else if (ins.toUpperCase() === 'FROM') {
      const [from, , name] = expanded.split(/\s+/);
      stages.push({ from, name, instructions: [] });
    } else {
      stages.at(-1)!.instructions.push([ins.toUpperCase(), expanded]);
    }
  }
  return stages;
}

/** The base image a stage ends up on, following `FROM <earlier stage>`. */
function baseImage(stages: Stage[], stage: Stage): string {
  const parent = stages.find((s) => s.name === stage.from);
  return parent ? baseImage(stages, parent) : stage.from;
}

const DOCKER_BASES = { cpu: 'node:22-trixie-slim', gpu: 'nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04' } as const;
const ENGINES = { cpu: ['native', 'tensorflow'], gpu: ['native', 'tensorflow-gpu'] } as const;

for (const [flavour, base] of Object.entries(DOCKER_BASES) as ['cpu' | 'gpu', string][]) {
  test(`Dockerfile.${flavour}: ${base}, npm ci in a deps stage, non-root, ringtune CLI entrypoint, engine check, COPY sources exist`, () => {
    const path = join(ROOT, `deploy/docker/Dockerfile.${flavour}`);
    const stages = parseDockerfile(path);
    const runtime = stages.at(-1)!;
    const deps = stages.find((s) => s.name === 'deps');
    assert.ok(deps, 'no deps stage');
    assert.equal(baseImage(stages, runtime), base);
    assert.equal(baseImage(stages, deps), base, 'native addons must be built on the runtime base (same glibc)');
    // Node 22 LTS: the image's Node is what `engines` must accept.
    const nodeStage = stages.find((s) => s.from.startsWith('node:'));
    assert.match(nodeStage?.from ?? '', /^node:22-/);
    assert.ok(deps.instructions.some(([i, r]) => i === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(r)));
    assert.ok(runtime.instructions.some(([i, r]) => i === 'COPY' && r.startsWith('--from=deps /app/node_modules')));
    assert.ok(!runtime.instructions.some(([i, r]) => i === 'RUN' && /\bnpm (ci|install)\b/.test(r)), 'runtime stage must not install packages');
    // The build fails when a promised engine does not load: the check runs in the final stage, after
    // node_modules and the native addon are in place, with exactly this flavour's engines.
    const at = (pred: (ins: [string, string]) => boolean) => runtime.instructions.findIndex(pred);
    const check = at(([i, r]) => i === 'RUN' && r.startsWith('node deploy/docker/check-engines.mjs '));
    assert.ok(check >= 0, 'no RUN node deploy/docker/check-engines.mjs in the final stage');
    assert.deepEqual(runtime.instructions[check][1].split(/\s+/).slice(2), [...ENGINES[flavour]]);
    for (const copied of ['--from=deps /app/node_modules', '--from=deps /app/native']) assert.ok(at(([i, r]) => i === 'COPY' && r.startsWith(copied)) < check, `${copied} must come before the check`);
    // The CLI bundle is built in the final stage, after the sources it is made of.
    const bundle = at(([i, r]) => i === 'RUN' && r.startsWith('node scripts/bundle.mjs && node scripts/bundle.mjs --check'));
    assert.ok(bundle >= 0, 'no RUN node scripts/bundle.mjs in the final stage');
    for (const copied of ['src ', 'bin ', 'proto ', '--from=deps /app/node_modules']) assert.ok(at(([i, r]) => i === 'COPY' && r.startsWith(copied)) < bundle, `COPY ${copied.trim()} must come before the bundle`);
    const users = runtime.instructions.filter(([i]) => i === 'USER').map(([, r]) => r);
    assert.match(users.at(-1) ?? '', /^[1-9][0-9]*(:[1-9][0-9]*)?$/, 'last USER must be a numeric non-root uid');
    const entry = runtime.instructions.filter(([i]) => i === 'ENTRYPOINT').at(-1);
    assert.ok(entry);
    const argv = JSON.parse(entry[1]) as string[];
    assert.deepEqual(argv.slice(-2), ['node', '/app/bin/ringtune.js']);
    assert.ok(existsSync(join(ROOT, 'bin/ringtune.js')));
    // Every COPY from the build context exists, and the .dockerignore beside the Dockerfile lets it through.
    const ignore = readFileSync(`${path}.dockerignore`, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*');
    for (const s of stages) {
      for (const [i, r] of s.instructions) {
        if (i !== 'COPY' || r.startsWith('--from=')) continue;
        const srcs = r.replace(/--\S+\s+/g, '').split(/\s+/).slice(0, -1);
        for (const src of srcs) {
          assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: not in the repository`);
          const parts = src.replace(/\/$/, '').split('/'); // let through by its own line or a parent directory's
          const through = parts.some((_, k) => [`!${parts.slice(0, k + 1).join('/')}`, `!${parts.slice(0, k + 1).join('/')}/`].some((l) => ignore.includes(l)));
          assert.ok(through, `COPY ${src}: excluded by .dockerignore`);
        }
      }
    }
    // The CUDA choice follows the tfjs-node-gpu version in the lock file (libtensorflow 2.9.1 opens CUDA 11 and cuDNN 8 libraries).
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    assert.match(lock.packages['node_modules/@tensorflow/tfjs-node-gpu']?.version ?? '', /^4\.22\./);
    if (flavour === 'gpu') assert.match(base, /^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-/);
  });
}

test('package.json allowScripts names every dependency with an install script, and approves only the tfjs-node bindings the images need', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const withScripts = Object.entries(lock.packages as Record<string, Obj>).filter(([k, v]) => k && v.hasInstallScript).map(([k]) => k.replace(/^.*node_modules\//, ''));
  assert.deepEqual(Object.keys(pkg.allowScripts).sort(), [...new Set(withScripts)].sort(), "allowScripts vs the lock file's hasInstallScript");
  assert.deepEqual(Object.entries(pkg.allowScripts).filter(([, ok]) => ok).map(([k]) => k).sort(), ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']);
  // The image builds run these (npm ci): the engine check then proves they produced a binding.
  assert.equal(pkg.scripts.postinstall, 'node native/build.mjs && node scripts/bundle.mjs');
});

test('check-engines.mjs (the images\' build check) passes exactly when the engines load: real addon, real tfjs-node package', () => {
  const run = (...engines: string[]) => spawnSync(process.execPath, [join(ROOT, 'deploy/docker/check-engines.mjs'), ...engines], { cwd: ROOT, encoding: 'utf8' });
  const native = run('native');
  assert.equal(native.status, 0, native.stderr);
  assert.match(native.stdout, /ok {3}native: ringtune native addon \(\d+ exports\)/);
  // tfjs-node loads only when its binding was built or downloaded by its install script; the check
  // must agree with whether that file is there (a package directory alone is what the old check saw).
  const tfjsNode = join(ROOT, 'node_modules/@tensorflow/tfjs-node');
  const binding = join(tfjsNode, `lib/napi-v${process.versions.napi}/tfjs_binding.node`);
  const tf = run('native', 'tensorflow');
  if (existsSync(binding)) {
    assert.equal(tf.status, 0, tf.stderr);
  } else {
    // npm ci drops the optional package entirely when its install script fails (a clean clone here);
    // a developer's tree may keep the package without its binding. Both must fail the build.
    assert.equal(tf.status, 1, 'tfjs-node without its binding must fail the build');
    assert.match(tf.stderr, existsSync(tfjsNode) ? /^FAIL tensorflow: .*tfjs_binding\.node/m : /^FAIL tensorflow: Cannot find module '@tensorflow\/tfjs-node'/m);
    assert.match(tf.stdout, /^ok {3}native/m, 'the other engines are still reported');
  }
  // This machine has no CUDA 11 libraries in its linker cache: the GPU check names what is missing.
  const gpu = run('tensorflow-gpu');
  const ldcache = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? '';
  if (!ldcache.includes('libcudnn.so.8 ')) {
    assert.equal(gpu.status, 1);
    assert.match(gpu.stderr, /FAIL tensorflow-gpu: the CUDA base image lacks .*libcudnn\.so\.8/);
  }
  assert.equal(run('tpu').status, 2, 'an unknown engine is a usage error');
});
