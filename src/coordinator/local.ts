/**
 * `ringtune local`: the whole cluster on this machine as separate processes — a private nats-server
 * (unless a URL is given), the coordinator and N workers on 127.0.0.1 — with their output prefixed.
 * Ctrl-C (SIGINT/SIGTERM) stops every child and the NATS server. Writes
 * <output>/prometheus-targets.json (Prometheus file_sd) listing every process's /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RING_PROCESS_ENV } from '../collective/ring-options.ts';
import { loadJobFile, parseThreads, threadsFor, type Threads } from '../config/compile.ts';
import type { JobOverrides } from '../config/overrides.ts';
import { newJobSecret } from '../control/auth.ts';
import { freePort, startNatsServer, type NatsServer, type NatsUser } from '../control/nats-server.ts';
import { subjects } from '../control/subjects.ts';
import { claimCheckpointDir } from '../run/checkpoint-dir.ts';
import { PARENT_PID_ENV } from '../util/parent-watch.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { hubOptionsFromEnv, type HubOptions } from '../hub/hub-options.ts';
import { resolveJobModel } from '../hub/resolve.ts';

const CLI = fileURLToPath(new URL('../../bin/ringtune.js', import.meta.url));

export interface LocalOptions {
  jobFile: string;
  workers?: number;
  natsUrl?: string;
  metricsPortBase?: number;
  resume?: boolean;
  overwrite?: boolean;
  backend?: string;
  /** --output / --set, applied here and passed on to the coordinator (workers get the compiled job from it). */
  overrides?: JobOverrides;
  /** Native engine threads per worker (--threads / RINGTUNE_THREADS); default: the job's `threads`, auto = cores / workers. */
  threads?: Threads;
  log?: (line: string) => void;
  /** Where the job's hub model comes from (default: the HF_* environment). */
  hub?: HubOptions;
  /** false: keep the processes' output to itself, printing the last lines only if the run fails. */
  echo?: boolean | RegExp;
}

function prefixed(child: ChildProcess, tag: string, echo: boolean | RegExp, kept: string[]): void {
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      if (echo === true || (echo instanceof RegExp && echo.test(line))) out.write(`${tag} ${line}\n`);
      kept.push(`${tag} ${line}`);
      if (kept.length > 200) kept.shift();
    });
  }
}

/**
 * Native engine threads of each local worker, passed to it as --threads: `explicit` (--threads) >
 * RINGTUNE_THREADS > the job's `threads` > auto = cores / workers (at least 1), so N workers on one
 * machine do not oversubscribe it. Resolved here: only this process knows how many workers share it.
 */
export function workerThreads(explicit: Threads | undefined, env: string | undefined, fromJob: Threads | undefined, workers: number,
  cores = availableParallelism()): number {
  const fromEnv = env ? parseThreads(env, 'RINGTUNE_THREADS') : undefined;
  return threadsFor(explicit ?? fromEnv, fromJob, cores / workers);
}

/**
 * The NATS users of one job and what each may do (docs/deploy.md lists the same permissions for a
 * cluster's own server): the coordinator publishes Control and Assignments and answers status
 * requests; workers publish their reports and read Control and their own Assignment; `status` asks.
 */
export function natsRoles(job: string): Record<'coordinator' | 'worker' | 'status', NatsUser> {
  const s = subjects(job);
  const password = () => randomBytes(18).toString('base64url');
  const reports = [s.join, s.ready, s.heartbeat, s.step, s.eval, s.checkpoint, s.done, s.failed, s.reform, s.leave];
  return {
    coordinator: { user: 'coordinator', password: password(), publish: [s.control, s.worker('*'), '_INBOX.>'], subscribe: [...reports, s.status] },
    worker: { user: 'worker', password: password(), publish: reports, subscribe: [s.control, s.worker('*')] },
    status: { user: 'status', password: password(), publish: [s.status], subscribe: ['_INBOX.>'] },
  };
}

export async function runLocalCluster(o: LocalOptions): Promise<number> {
  const log = o.log ?? ((l: string) => console.error(l));
  // A hub model is fetched once, here; the workers share this machine and get the snapshot's path.
  const job = await resolveJobModel(await loadJobFile(o.jobFile, o.overrides), o.hub ?? hubOptionsFromEnv());
  const modelDirArgs = job.hub ? ['--model-dir', job.modelDir] : [];
  // The coordinator compiles the job again: the same overrides, --output made absolute (its cwd is ours anyway).
  const overrideArgs = [...(o.overrides?.output !== undefined ? ['--output', job.outputDir] : []), ...(o.overrides?.set ?? []).flatMap((a) => ['--set', a])];
  const workers = o.workers ?? job.cluster.workers;
  const threads = workerThreads(o.threads, process.env.RINGTUNE_THREADS, job.threads, workers);
  // Refuse another run's checkpoints and outputs before any process starts (the coordinator claims them again).
  if (!o.overwrite) await claimCheckpointDir(job.checkpoint.dir, { resume: o.resume, outputDir: job.outputDir });
  // One secret per local run (unless the caller set one): it authenticates every control message.
  const secret = process.env.RINGTUNE_JOB_SECRET || newJobSecret();
  // A private server gets one NATS user per role, each allowed only its own subjects.
  const roles = o.natsUrl ? undefined : natsRoles(job.name);
  let nats: NatsServer | undefined;
  if (roles) nats = await startNatsServer({ log, users: Object.values(roles), diesWithParentOf: process.pid });
  const url = o.natsUrl ?? nats!.url;
  const roleEnv = (role: keyof ReturnType<typeof natsRoles>): Record<string, string> =>
    roles ? { RINGTUNE_NATS_USER: roles[role].user, RINGTUNE_NATS_PASSWORD: roles[role].password } : {};
  const ports = await Promise.all([...Array(workers + 1).keys()].map((i) => (o.metricsPortBase ? Promise.resolve(o.metricsPortBase + i) : freePort())));
  await mkdir(job.outputDir, { recursive: true });
  await writeFileAtomic(join(job.outputDir, 'prometheus-targets.json'), JSON.stringify([
    { targets: [`127.0.0.1:${ports[0]}`], labels: { job: job.name, role: 'coordinator' } },
    ...ports.slice(1).map((p, i) => ({ targets: [`127.0.0.1:${p}`], labels: { job: job.name, role: 'worker', rank_hint: String(i) } })),
  ], null, 2) + '\n');
  log(`[local] ${job.name}: NATS ${url}, ${workers} workers (${threads} native thread${threads > 1 ? 's' : ''} each), metrics on ports ${ports.join(', ')}`);

  const env = {
    ...process.env, RINGTUNE_NATS_URL: url, RINGTUNE_JOB_SECRET: secret, [PARENT_PID_ENV]: String(process.pid), ...(o.backend ? { RINGTUNE_BACKEND: o.backend } : {}),
  };
  const children: ChildProcess[] = [];
  const kept: string[] = [];
  const start = (tag: string, args: string[], extraEnv: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    prefixed(child, tag, o.echo ?? true, kept);
    children.push(child);
    return new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1))));
  };
  const coordinatorExit = start('[coord]', ['coordinator', o.jobFile, '--workers', String(workers), '--metrics-port', String(ports[0]), ...(o.resume ? ['--resume'] : []), ...(o.overwrite ? ['--overwrite'] : []), ...overrideArgs, ...modelDirArgs], roleEnv('coordinator'));
  const workerExits = [...Array(workers).keys()].map((i) =>
    start(`[w${i}]`, ['worker', '--job', job.name, '--ring-host', '127.0.0.1', '--ring-port', '0', '--rank-hint', String(i), '--metrics-port', String(ports[i + 1]),
      '--threads', String(threads)], { ...RING_PROCESS_ENV, ...roleEnv('worker') }));

  let interrupted = false;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  };
  // First signal: every process stops after the current step (the ranks agree on it in the step's
  // all-reduce), rank 0 checkpoints, the run ends resumable; a second signal kills at once.
  const STOP_GRACE_MS = 120_000;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      log(`[local] ${signal} again: killing every process`);
      return stopAll('SIGKILL');
    }
    interrupted = true;
    log(`[local] ${signal}: every process stops after the current step (again to kill at once)`);
    stopAll('SIGTERM');
    setTimeout(() => stopAll('SIGKILL'), STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const code = await coordinatorExit;
    // Workers leave on Shutdown/Abort; give them time to finish writing, then make sure.
    const grace = setTimeout(() => stopAll('SIGKILL'), code === 0 ? 30_000 : 10_000);
    await Promise.all(workerExits);
    clearTimeout(grace);
    if (code !== 0 && o.echo !== true && o.echo !== undefined) process.stderr.write(kept.slice(-40).join('\n') + '\n');
    return interrupted ? (code !== 0 ? code : 130) : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await nats?.stop();
  }
}
