/** Real local clusters for integration tests: nats-server, coordinator and workers as OS processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { startNatsServer, type NatsServer, type NatsServerOptions } from '../../src/control/nats-server.ts';
import type { Family } from '../../src/model/config.ts';
import { createModelDir } from '../../src/model/create.ts';
import { lmLines, ready, writeLines } from '../train/fixtures.ts';

export const CLI = fileURLToPath(new URL('../../bin/ringtune.js', import.meta.url));

export interface JobOptions {
  family?: Family;
  workers: number;
  maxSteps?: number;
  epochs?: number;
  examples?: number;
  globalBatch?: number;
  microBatch?: number;
  checkpointEvery?: number;
  evalEvery?: number;
  heartbeatTimeoutMs?: number;
  output?: string;
  codec?: 'fp32' | 'bf16';
}

/** A model dir (shared by all jobs in `dir`), a generated dataset and job.yaml; returns the job file. */
export async function makeJob(dir: string, name: string, o: JobOptions): Promise<string> {
  await ready;
  const family = o.family ?? 'llama';
  const model = join(dir, `base-${family}`);
  await createModelDir({ family, preset: 'tiny', out: model, seed: 1 }).catch(async (err) => {
    if (!(await readFile(join(model, 'config.json')).then(() => true, () => false))) throw err;
  });
  await writeLines(join(dir, 'train.jsonl'), lmLines(o.examples ?? 96, 5));
  const job = {
    name, model, output: o.output ?? join(dir, `out-${name}`),
    data: { train: join(dir, 'train.jsonl'), format: 'text', eval_fraction: 0.125, max_seq_len: 64 },
    training: {
      ...(o.maxSteps ? { max_steps: o.maxSteps } : { epochs: o.epochs ?? 1 }),
      global_batch: o.globalBatch ?? 12, micro_batch: o.microBatch ?? 4, lr: 3e-3, warmup_steps: 3, schedule: 'cosine', seed: 3,
    },
    checkpoint: { every_n_steps: o.checkpointEvery ?? 0, keep: 2 },
    eval: { every_n_steps: o.evalEvery ?? 0 },
    cluster: { workers: o.workers, heartbeat_interval_ms: 200, heartbeat_timeout_ms: o.heartbeatTimeoutMs ?? 5000, hash_every_n_steps: 5, codec: o.codec ?? 'fp32' },
  };
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, stringify(job));
  return file;
}

export interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number>;
}

export function startLocal(jobFile: string, args: string[] = [], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, [CLI, 'local', jobFile, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  return { child, output: () => out, exit };
}

export async function runLocal(jobFile: string, args: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const r = startLocal(jobFile, args, env);
  const code = await r.exit;
  return { code, output: r.output() };
}

export async function history(outDir: string): Promise<Array<Record<string, number | string>>> {
  return (await readFile(join(outDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
}

export const trainLosses = (h: Array<Record<string, number | string>>) => h.filter((x) => x.type === 'train').map((x) => Number(x.loss));

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ok` every `pollMs` until it holds; past `timeoutMs` an error names `what`. */
export async function until(what: string, ok: () => boolean, timeoutMs = 120_000, pollMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** A `ringtune` child process with its output collected (a pod, in the restart tests); `all` lists it for cleanup. */
/** `until`, whose timeout error carries the processes' output. */
export async function untilOr(what: string, ok: () => boolean, timeoutMs: number, procs: CliProc[]): Promise<void> {
  try {
    await until(what, ok, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${procs.map((p) => p.output()).join('\n----\n')}`);
  }
}

export interface CliProc { child: ChildProcess; output: () => string; exit: Promise<number> }

export function startCli(args: string[], env: NodeJS.ProcessEnv, all: ChildProcess[]): CliProc {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  all.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out, exit: new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1))) };
}

/**
 * `ringtune worker` as its pod runs it (deploy/k8s/base/jobset.yaml: the job's name, a rank hint) on this
 * machine: free ring and metrics ports on 127.0.0.1, one native thread. `command`: the pod's args.
 */
export function startPodWorker(job: string, natsUrl: string, rankHint: number | undefined, env: NodeJS.ProcessEnv, all: ChildProcess[], command = ['worker']): CliProc {
  const hint = rankHint === undefined ? [] : ['--rank-hint', String(rankHint)];
  return startCli([...command, '--nats', natsUrl, '--job', job, '--ring-host', '127.0.0.1', '--ring-port', '0', '--metrics-port', '0', '--threads', '1', ...hint], env, all);
}

/** `ringtune coordinator` as its pod runs it (`--resume-if-present`: a replaced pod takes the run over), metrics on a free port. */
export function startPodCoordinator(jobFile: string, natsUrl: string, env: NodeJS.ProcessEnv, all: ChildProcess[], flags = ['--resume-if-present']): CliProc {
  return startCli(['coordinator', jobFile, ...flags, '--nats', natsUrl, '--metrics-port', '0'], env, all);
}

/**
 * What a cluster test starts from: a temp directory, its own nats-server, and `all`, where the test puts
 * every child it starts; when the test ends the children still running are SIGKILLed, NATS stopped,
 * the directory removed.
 */
export async function clusterScratch(t: TestContext, prefix: string, natsOptions: NatsServerOptions = {}): Promise<{ dir: string; nats: NatsServer; all: ChildProcess[] }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const nats = await startNatsServer(natsOptions);
  const all: ChildProcess[] = [];
  t.after(async () => {
    for (const c of all) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, nats, all };
}
