/**
 * `ringtune coordinator`, `ringtune worker` (what a cluster runs), `ringtune local` (NATS + a
 * coordinator + N workers on this machine) and `ringtune status`. Every flag also reads the
 * environment variable named in its help (flags win); the Kubernetes manifests pass exactly these.
 */
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { loadJobFile, threadsFor, type Threads } from '../config/compile.ts';
import type { BusOptions } from '../control/bus.ts';
import { Bus } from '../control/bus.ts';
import { ControlAuth, loadJobSecret } from '../control/auth.ts';
import { freePort } from '../control/nats-server.ts';
import { subjects } from '../control/subjects.ts';
import { runCoordinator } from '../coordinator/main.ts';
import { runLocalCluster } from '../coordinator/local.ts';
import { CoordinatorMetrics, startMetricsServer, WorkerMetrics } from '../metrics/metrics.ts';
import { runWorker } from '../worker/worker.ts';
import { hubOptionsFromEnv } from '../hub/hub-options.ts';
import { action, allCores, BACKEND_HELP, stopOnSignals, intArg, overridesOf, startBackend, threadsOption, withOverrides } from './common.ts';
import { parseRecord, stringifyRecord } from '../run/record-json.ts';
import { claimOptionsIfPresent } from '../run/checkpoint-dir.ts';
import { InputError } from '../errors.ts';
import { runServingWorker, servingWorker, withServeOptions, type ServeFlags } from './worker-serve.ts';

const natsOption = () => new Option('--nats <url>', 'NATS server URL').env('RINGTUNE_NATS_URL');
const metricsOption = () => new Option('--metrics-port <port>', 'port of /metrics and /healthz (0 = any free port)').env('RINGTUNE_METRICS_PORT').argParser(intArg(0)).default(9464);
const lingerOption = () => new Option('--linger-ms <ms>', 'keep /metrics up this long after the run ends').env('RINGTUNE_LINGER_MS').argParser(intArg(0)).default(0);
const backendOption = () => new Option('--backend <name>', BACKEND_HELP).env('RINGTUNE_BACKEND');
const secretOption = () => new Option('--secret-file <file>', "file holding the job's shared control-plane secret (or set RINGTUNE_JOB_SECRET)").env('RINGTUNE_JOB_SECRET_FILE');
const natsTlsOptions = () => [
  new Option('--nats-ca <file>', 'CA bundle that signed the NATS server certificate (TLS)').env('RINGTUNE_NATS_CA'),
  new Option('--nats-cert <file>', 'client certificate for NATS (mutual TLS)').env('RINGTUNE_NATS_CERT'),
  new Option('--nats-key <file>', 'key of the NATS client certificate').env('RINGTUNE_NATS_KEY'),
];

interface NatsFlags { natsCa?: string; natsCert?: string; natsKey?: string }

/**
 * NATS credentials and TLS: flags / RINGTUNE_NATS_* (Kubernetes Secrets) over the job spec's
 * cluster.nats. The same for every role: the coordinator, each worker and `ringtune status`.
 */
function busOptions(url: string, flags: NatsFlags, fromJob?: { token?: string; user?: string; password?: string; tls?: BusOptions['tls'] }): BusOptions {
  const tls = flags.natsCa || flags.natsCert || flags.natsKey ? { caFile: flags.natsCa, certFile: flags.natsCert, keyFile: flags.natsKey } : fromJob?.tls;
  return {
    url, name: 'ringtune',
    token: process.env.RINGTUNE_NATS_TOKEN ?? fromJob?.token,
    user: process.env.RINGTUNE_NATS_USER ?? fromJob?.user,
    password: process.env.RINGTUNE_NATS_PASSWORD ?? fromJob?.password,
    tls,
  };
}

const withNatsTls = (c: Command) => { for (const opt of natsTlsOptions()) c.addOption(opt); return c; };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerClusterCommands(program: Command): void {
  withOverrides(withNatsTls(program
    .command('coordinator <job>')))
    .description('run the coordinator of a distributed job (waits for cluster.workers workers on NATS)')
    .addOption(natsOption())
    .addOption(new Option('--workers <n>', 'number of workers (overrides cluster.workers)').env('RINGTUNE_WORKERS').argParser(intArg(1)))
    .addOption(metricsOption())
    .option('--resume', 'continue from the latest checkpoint')
    .option('--overwrite', "start over even if the checkpoint directory holds another run's checkpoints (they are removed)")
    .option('--resume-if-present', "take over the run of this job's killed coordinator if its workers still train; else resume when the checkpoint directory holds this job's checkpoints, start fresh when it holds none, refuse another job's (a restarted pod)")
    // The same environment goes to every pod; the coordinator runs no model, so it only accepts this.
    .addOption(backendOption().hideHelp())
    .addOption(lingerOption())
    .addOption(secretOption())
    // `ringtune local` resolved the job's hub model already: its workers share this machine and get the path.
    .addOption(new Option('--model-dir <dir>', 'directory holding the job\'s hub model on every worker (ringtune local passes its cache snapshot); without it each worker fetches the hub model itself').hideHelp())
    .action(action(async (jobFile: string, o: { nats?: string; workers?: number; metricsPort: number; resume?: boolean; overwrite?: boolean; resumeIfPresent?: boolean; lingerMs: number; secretFile?: string; output?: string; set?: string[]; modelDir?: string } & NatsFlags) => {
      const job = await loadJobFile(jobFile, overridesOf(o));
      if (o.modelDir && job.hub) job.modelDir = o.modelDir;
      const secret = loadJobSecret({ file: o.secretFile ?? job.cluster.secretFile });
      if (o.workers) job.cluster.workers = o.workers;
      if (o.resumeIfPresent && (o.resume || o.overwrite)) throw new InputError(`--resume-if-present decides between resuming and starting fresh itself: drop ${o.resume ? '--resume' : '--overwrite'}`);
      const claim = o.resumeIfPresent ? await claimOptionsIfPresent(job.checkpoint.dir, job.name, job.outputDir) : { resume: o.resume, overwrite: o.overwrite };
      const url = o.nats ?? job.cluster.nats.url ?? 'nats://127.0.0.1:4222';
      const metrics = new CoordinatorMetrics({ job: job.name });
      const server = await startMetricsServer(metrics.registry, { port: o.metricsPort });
      console.error(`[coordinator] metrics on :${server.port}/metrics`);
      const signals = stopOnSignals();
      try {
        const r = await runCoordinator({
          job, bus: busOptions(url, o, job.cluster.nats), secret, resume: claim.resume, overwrite: claim.overwrite, recoverIfLive: o.resumeIfPresent, log: (l) => console.error(l), stop: signals.stop,
          events: {
            phase: (p) => metrics.setPhase(p),
            workersAlive: (n, world) => { metrics.setWorkersAlive(n); metrics.setWorldSize(world); },
            step: (s) => metrics.observeStep({ step: s.step, loss: s.loss, lr: s.lr, gradNorm: s.gradNorm, inputTokens: s.tokens, samples: s.samples }),
            hashCheck: (ok) => metrics.replicaHashCheck(ok),
            eval: (step, r) => metrics.observeEval(step, r),
            checkpoint: (step) => metrics.checkpointWritten(step),
            rejected: (reason) => metrics.controlRejected(reason),
            started: (run) => { metrics.statusFrom(run.status); metrics.natsFrom(run.nats); },
          },
        });
        console.log(stringifyRecord({ run_id: r.runId, steps: r.steps, stopped_early: r.stoppedEarly, stopped_by: r.stoppedBy, base_eval: r.baseEval, final_eval: r.finalEval, final_model: r.finalModelDir }, 2));
        if (r.stoppedBy) process.exitCode = signals.exitCode() ?? 143;
      } finally {
        signals.dispose();
        if (o.lingerMs > 0) await sleep(o.lingerMs);
        await server.close();
      }
    }));

  withServeOptions(withNatsTls(program
    .command('worker')))
    .description('run one worker of a distributed job: joins via NATS, trains its shard, all-reduces over the gRPC ring')
    .addOption(natsOption().makeOptionMandatory())
    .addOption(new Option('--job <name>', 'job name (the job spec\'s `name`)').env('RINGTUNE_JOB').makeOptionMandatory())
    .addOption(new Option('--ring-host <host>', 'interface the ring server binds').env('RINGTUNE_RING_HOST').default('0.0.0.0'))
    .addOption(new Option('--ring-port <port>', 'ring server port (0 = any free port)').env('RINGTUNE_RING_PORT').argParser(intArg(0)).default(50051))
    .addOption(new Option('--advertise <host:port>', 'address other ranks dial (default: ring host and port)').env('RINGTUNE_ADVERTISE'))
    // An empty value (the variable's source missing) means no hint, not rank 0.
    .addOption(new Option('--rank-hint <rank>', 'preferred rank (e.g. an Indexed Job\'s completion index)').env('RINGTUNE_RANK_HINT').argParser((v) => (v.trim() === '' ? undefined : intArg(0)(v))))
    .addOption(metricsOption())
    .addOption(backendOption())
    .addOption(threadsOption('all cores'))
    .addOption(lingerOption())
    .addOption(new Option('--trace-examples <file>', 'append which examples each step trained on (JSON lines)').env('RINGTUNE_TRACE_EXAMPLES'))
    .addOption(secretOption())
    .action(action(async (o: { nats: string; job: string; ringHost: string; ringPort: number; advertise?: string; rankHint?: number; metricsPort: number; backend?: string; threads?: Threads; lingerMs: number; traceExamples?: string; secretFile?: string } & NatsFlags & ServeFlags) => {
      if (servingWorker(o) || o.maxRuns !== undefined) return runServingWorker(o);
      const secret = loadJobSecret({ file: o.secretFile });
      // The job's `threads` arrives with the assignment; until then (and if it says auto) all cores.
      const backend = await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      const metrics = new WorkerMetrics({ job: o.job, backend: backend.name });
      const server = await startMetricsServer(metrics.registry, { port: o.metricsPort });
      const ringPort = o.ringPort || (await freePort(o.ringHost === '0.0.0.0' ? '127.0.0.1' : o.ringHost));
      const signals = stopOnSignals();
      let assigned = false;
      let left = false;
      try {
        await runWorker({
          stop: signals.stop,
          bus: busOptions(o.nats, o), secret, job: o.job, ringHost: o.ringHost, ringPort, advertise: o.advertise, rankHint: o.rankHint ?? -1,
          ringToken: process.env.RINGTUNE_RING_TOKEN, hub: hubOptionsFromEnv(), backend, threads: o.threads, metricsPort: server.port, log: (l) => console.error(l), traceFile: o.traceExamples,
          events: {
            phase: (p) => metrics.setPhase(p),
            assigned: (rank) => { assigned = true; metrics.setRank(rank); },
            left: () => { left = true; },
            rejected: (reason) => metrics.controlRejected(reason),
            ring: (ring) => metrics.ringFrom(ring),
            nats: (nc) => metrics.natsFrom(nc),
            step: (r) => metrics.observeStep({
              step: r.step, localLoss: r.localLoss, lr: r.lr, gradNorm: r.gradNorm, inputTokens: r.inputTokens, samples: r.samples,
              stepSeconds: (r.computeMs + r.reduceMs + r.updateMs) / 1000, allreduceSeconds: r.reduceMs / 1000, allreduceBytes: r.reduceBytes,
              skippedNonFinite: r.skippedNonFinite,
            }),
            checkpoint: (c) => void metrics.checkpointWritten(c.seconds, c.path),
          },
        });
        if (signals.exitCode() !== undefined) process.exitCode = signals.exitCode();
      } finally {
        signals.dispose();
        // Not for a worker that left a run going on (drained: its pod's replacement, same index, starts
        // only once this process is gone), nor for one that never joined a run (nothing of its own to
        // scrape). A run stopped as a whole (SIGTERM to every rank) lingers: its final values get scraped.
        if (o.lingerMs > 0 && assigned && !left) await sleep(o.lingerMs);
        await server.close();
      }
    }));

  withOverrides(program
    .command('local <job>'))
    .description('run a job on this machine: nats-server (unless --nats), a coordinator and N worker processes')
    .option('--workers <n>', 'worker processes (default: cluster.workers)', intArg(1))
    .addOption(natsOption())
    .option('--metrics-port-base <port>', 'coordinator gets this port, worker i gets port + 1 + i (default: free ports)', intArg(1))
    .option('--resume', 'continue from the latest checkpoint')
    .option('--overwrite', "start over even if the checkpoint directory holds another run's checkpoints (they are removed)")
    .addOption(backendOption())
    .addOption(threadsOption('cores / workers, at least 1'))
    .action(action(async (jobFile: string, o: { workers?: number; nats?: string; metricsPortBase?: number; resume?: boolean; overwrite?: boolean; backend?: string; threads?: Threads; output?: string; set?: string[] }) => {
      const code = await runLocalCluster({
        jobFile, workers: o.workers, natsUrl: o.nats, metricsPortBase: o.metricsPortBase, resume: o.resume, overwrite: o.overwrite, backend: o.backend, threads: o.threads,
        overrides: overridesOf(o),
      });
      process.exit(code);
    }));

  withNatsTls(program
    .command('status'))
    .description('print the live state of a job (asks its coordinator over NATS)')
    .addOption(natsOption().default('nats://127.0.0.1:4222'))
    .addOption(new Option('--job <name>', 'job name').env('RINGTUNE_JOB').makeOptionMandatory())
    .option('--timeout-ms <ms>', 'how long to wait for the coordinator', intArg(1), 3000)
    .addOption(secretOption())
    .action(action(async (o: { nats: string; job: string; timeoutMs: number; secretFile?: string } & NatsFlags) => {
      const auth = new ControlAuth(loadJobSecret({ file: o.secretFile }), o.job, `status-${randomBytes(4).toString('hex')}`);
      const bus = await Bus.connect(busOptions(o.nats, o), auth);
      try {
        const s = await bus.request(subjects(o.job).status, 'StatusRequest', {}, 'StatusReply', o.timeoutMs).catch(() => undefined);
        if (!s) throw new InputError(`no coordinator of job "${o.job}" answered on ${o.nats} within ${o.timeoutMs} ms`);
        console.log(stringifyRecord({ ...s, lastEval: s.lastEvalJson ? parseRecord(s.lastEvalJson) : undefined, lastEvalJson: undefined }, 2));
      } finally {
        await bus.close();
      }
    }));
}
