/**
 * The Kubernetes manifests as a cluster would get them: `kubectl kustomize` renders each overlay, every
 * object is validated against the Kubernetes API's OpenAPI schemas (the `kubernetes-models` package
 * ships them compiled to validators, so this works offline), and the containers that run ringtune are
 * checked against the CLI contract (flags and RINGTUNE_* variables of `coordinator` and `worker`).
 * Also: the Dockerfiles' stages, base images, user and entrypoint.
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

function checkOverlay(objs: Obj[]) {
  const coordJob = named(objs, 'Job', 'ringtune-coordinator');
  const workers = named(objs, 'StatefulSet', 'ringtune-workers');
  const nats = named(objs, 'Deployment', 'ringtune-nats');
  const ringtuneContainers = [coordJob, workers].flatMap((o) => podSpec(o).containers as Obj[]);
  assert.equal(ringtuneContainers.length, 2);
  const [coord, worker] = ringtuneContainers.map(invocation);
  assert.equal(coord.command, 'coordinator');
  assert.equal(worker.command, 'worker');

  // The coordinator's job file is job.yaml of a mounted ConfigMap, and it is a valid job spec.
  const [coordC] = podSpec(coordJob).containers as Obj[];
  const jobPath = coord.positionals[0];
  const mount = (coordC.volumeMounts as Obj[]).find((m) => jobPath === `${m.mountPath}/job.yaml`);
  assert.ok(mount, `coordinator: ${jobPath} is not on a mounted volume`);
  const vol = (podSpec(coordJob).volumes as Obj[]).find((v) => v.name === mount.name);
  assert.ok(vol?.configMap, `coordinator: volume ${mount.name} is not a ConfigMap`);
  const cm = named(objs, 'ConfigMap', vol.configMap.name);
  const spec = JobSchema.parse(parseYaml(cm.data['job.yaml']));
  assert.equal(worker.options.get('--job'), spec.name, "worker --job must equal job.yaml's name");
  for (const p of [spec.model, spec.data.train, spec.output, spec.checkpoint.dir ?? '/data']) assert.match(p, /^\/data\//, `${p} is not on the shared volume`);
  for (const o of [coordJob, workers]) {
    const c = podSpec(o).containers[0];
    const dataMount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === '/data');
    assert.ok(dataMount, `${o.metadata.name}: /data not mounted`);
    const claim = (podSpec(o).volumes as Obj[]).find((v) => v.name === dataMount.name)?.persistentVolumeClaim?.claimName;
    named(objs, 'PersistentVolumeClaim', claim);
  }

  // Sizes and addresses agree with each other.
  assert.equal(Number(coord.options.get('--workers')), workers.spec.replicas, 'coordinator --workers != StatefulSet replicas');
  const headless = named(objs, 'Service', workers.spec.serviceName);
  assert.equal(headless.spec.clusterIP, 'None');
  const ringPort = Number(worker.options.get('--ring-port'));
  assert.equal(portOf(podSpec(workers).containers[0], 'ring'), ringPort);
  assert.equal(worker.options.get('--advertise'), `$(POD_NAME).${headless.metadata.name}.$(NAMESPACE).svc.cluster.local:${ringPort}`);
  const fieldPath = (name: string) => (podSpec(workers).containers[0].env as Obj[]).find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(fieldPath('POD_NAME'), 'metadata.name');
  assert.equal(fieldPath('NAMESPACE'), 'metadata.namespace');
  assert.equal(fieldPath('RINGTUNE_RANK_HINT'), "metadata.labels['apps.kubernetes.io/pod-index']");
  // Native engine threads follow the worker's CPU request, in whole cores.
  const threadsRef = (podSpec(workers).containers[0].env as Obj[]).find((e) => e.name === 'RINGTUNE_THREADS')?.valueFrom?.resourceFieldRef;
  assert.deepEqual({ ...threadsRef, divisor: String(threadsRef?.divisor) }, { containerName: podSpec(workers).containers[0].name, resource: 'requests.cpu', divisor: '1' });
  assert.ok(podSpec(workers).containers[0].resources?.requests?.cpu, 'workers request no CPU for RINGTUNE_THREADS to follow');
  for (const inv of [coord, worker]) assertServiceReaches(objs, inv.options.get('--nats')!, nats);
  const natsToken = (podSpec(nats).containers[0].env as Obj[]).find((e) => e.name === 'NATS_TOKEN')?.valueFrom?.secretKeyRef;
  assert.ok(natsToken, 'nats-server gets no token from a Secret');
  for (const o of [coordJob, workers]) {
    const ref = (podSpec(o).containers[0].env as Obj[]).find((e) => e.name === 'RINGTUNE_NATS_TOKEN')?.valueFrom?.secretKeyRef;
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
  assert.deepEqual(ringRules[0].from, [{ podSelector: { matchLabels: workers.spec.selector.matchLabels } }]);
  const natsRules = rulesForPort(policyFor(nats), 4222);
  for (const o of [coordJob, workers]) {
    const labels = o.spec.template.metadata.labels;
    assert.ok(natsRules.some((r) => r.from.some((f: Obj) => Object.entries(f.podSelector?.matchLabels ?? { x: 'none' }).every(([k, v]) => labels[k] === v))),
      `${o.metadata.name} cannot reach NATS`);
  }
  for (const o of [coordJob, workers]) assert.equal(rulesForPort(policyFor(o), 9464).length, 1, `${o.metadata.name}: metrics port closed to Prometheus`);
  return { coordJob, workers, worker };
}

for (const overlay of ['cpu', 'gpu'] as const) {
  test(`overlays/${overlay}: renders, validates against the Kubernetes API schemas, matches the CLI contract`, async () => {
    const objs = kustomize(join(K8S, 'overlays', overlay));
    assert.deepEqual([...new Set(objs.map((o) => o.kind))].sort(),
      ['ConfigMap', 'Deployment', 'Job', 'Namespace', 'NetworkPolicy', 'PersistentVolumeClaim', 'Service', 'StatefulSet']);
    for (const o of objs) await validateObject(o);
    for (const o of objs) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'ringtune', `${o.kind}/${o.metadata.name}`);
    const { coordJob, workers, worker } = checkOverlay(objs);
    const image = (o: Obj) => podSpec(o).containers[0].image;
    assert.equal(image(workers), `ringtune:${overlay}`);
    assert.equal(image(coordJob), `ringtune:${overlay}`);
    const res = podSpec(workers).containers[0].resources;
    if (overlay === 'gpu') {
      assert.equal(String(res.limits['nvidia.com/gpu']), '1');
      assert.equal(worker.options.get('--backend'), 'tensorflow-gpu');
    } else {
      assert.equal(res.limits['nvidia.com/gpu'], undefined);
      assert.equal(worker.options.get('--backend'), undefined);
    }
  });
}

test('examples/custom (the overlay docs/deploy.md builds on): 4 GPU workers, its own job spec and image, a ServiceMonitor', async () => {
  const objs = kustomize(join(K8S, 'examples', 'custom'));
  for (const o of objs) if (o.kind !== 'ServiceMonitor' && o.kind !== 'PrometheusRule') await validateObject(o); // CRDs: checked by hand below
  const { coordJob, workers, worker } = checkOverlay(objs);
  assert.equal(workers.spec.replicas, 4);
  assert.equal(worker.options.get('--job'), 'llama-support');
  assert.equal(String(podSpec(workers).containers[0].resources.limits['nvidia.com/gpu']), '1');
  for (const o of [coordJob, workers]) assert.equal(podSpec(o).containers[0].image, 'registry.example.com/team/ringtune:0.1.0-gpu');
  assert.equal(byKind(objs, 'ServiceMonitor').length, 1);
});

test('the schema validation is not vacuous: broken objects are refused', async () => {
  const objs = kustomize(join(K8S, 'overlays', 'cpu'));
  const sts = structuredClone(named(objs, 'StatefulSet', 'ringtune-workers'));
  sts.spec.template.spec.containers[0].ports[0].containerPort = 'fifty';
  await assert.rejects(validateObject(sts), /containerPort must be integer/);
  const job = structuredClone(named(objs, 'Job', 'ringtune-coordinator'));
  delete job.spec.template.spec.containers;
  await assert.rejects(validateObject(job), /must have required property containers/);
  const np = structuredClone(named(objs, 'NetworkPolicy', 'ringtune-workers'));
  np.spec.ingress[0].ports[0].protocol = 7;
  await assert.rejects(validateObject(np), /protocol must be string/);
  await assert.rejects(validateObject({ apiVersion: 'v1', kind: 'Nonsense', metadata: { name: 'x' } }), /no schema/);
});

test('the contract check is not vacuous: an unknown variable, flag or a dangling $(VAR) is refused', () => {
  const objs = kustomize(join(K8S, 'overlays', 'cpu'));
  const c = () => structuredClone(podSpec(named(objs, 'StatefulSet', 'ringtune-workers')).containers[0]);
  const typo = c();
  typo.env.find((e: Obj) => e.name === 'RINGTUNE_JOB').name = 'RINGTUNE_JOB_NAME';
  assert.throws(() => invocation(typo), /reads no RINGTUNE_JOB_NAME/);
  const flag = c();
  flag.args = ['worker', '--ring-prot', '1'];
  assert.throws(() => invocation(flag), /no option --ring-prot/);
  const dangling = c();
  dangling.env = dangling.env.filter((e: Obj) => e.name !== 'POD_NAME');
  assert.throws(() => invocation(dangling), /\$\(POD_NAME\), which is not defined before it/);
});

test('the manifests use only options the real CLI declares (ringtune <cmd> --help)', () => {
  const objs = kustomize(join(K8S, 'overlays', 'gpu'));
  for (const o of [named(objs, 'Job', 'ringtune-coordinator'), named(objs, 'StatefulSet', 'ringtune-workers')]) {
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

for (const [flavour, base] of [['cpu', 'node:20-bookworm-slim'], ['gpu', 'nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04']] as const) {
  test(`Dockerfile.${flavour}: ${base}, npm ci in a deps stage, non-root, ringtune CLI entrypoint, COPY sources exist`, () => {
    const path = join(ROOT, `deploy/docker/Dockerfile.${flavour}`);
    const stages = parseDockerfile(path);
    const runtime = stages.at(-1)!;
    const deps = stages.find((s) => s.name === 'deps');
    assert.ok(deps, 'no deps stage');
    assert.equal(baseImage(stages, runtime), base);
    assert.equal(baseImage(stages, deps), base, 'native addons must be built on the runtime base (same glibc)');
    assert.ok(deps.instructions.some(([i, r]) => i === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(r)));
    assert.ok(runtime.instructions.some(([i, r]) => i === 'COPY' && r.startsWith('--from=deps /app/node_modules')));
    assert.ok(!runtime.instructions.some(([i, r]) => i === 'RUN' && /\bnpm (ci|install)\b/.test(r)), 'runtime stage must not install packages');
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
          assert.ok(ignore.includes(`!${src.replace(/\/?$/, '')}`) || ignore.includes(`!${src.replace(/\/?$/, '/')}`), `COPY ${src}: excluded by .dockerignore`);
        }
      }
    }
    // The CUDA choice follows the tfjs-node-gpu version in the lock file (libtensorflow 2.9.1 needs CUDA 11.2 + cuDNN 8.1).
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    assert.match(lock.packages['node_modules/@tensorflow/tfjs-node-gpu']?.version ?? '', /^4\.22\./);
  });
}
