/** Elastic-run helpers for integration tests: jobs with an `elastic:` block, traces, extra workers. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort } from '../../src/control/nats-server.ts';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { RING_PROCESS_ENV } from '../../src/collective/ring-options.ts';
import { CLI, makeJob, type JobOptions } from './cluster-helpers.ts';

export interface ElasticJobOptions extends JobOptions {
  elastic?: { min_workers?: number; max_workers?: number; on_loss?: 'shrink' | 'wait' | 'fail'; wait_timeout_ms?: number };
  /** checkpoint.keep (the reference runs keep every step). */
  keep?: number;
  checkpointDir?: string;
}

/** makeJob's job plus the elastic block and checkpoint settings. */
export async function makeElasticJob(dir: string, name: string, o: ElasticJobOptions): Promise<string> {
  const file = await makeJob(dir, name, o);
  const spec = parse(await readFile(file, 'utf8')) as Record<string, Record<string, unknown>>;
  if (o.elastic) spec.elastic = o.elastic;
  if (o.keep !== undefined) spec.checkpoint!.keep = o.keep;
  if (o.checkpointDir) spec.checkpoint!.dir = o.checkpointDir;
  await writeFile(file, stringify(spec));
  return file;
}

export interface TraceLine {
  rank: number;
  step: number;
  epoch: number;
  ringEpoch: number;
  examples: string[];
}

export async function readTrace(file: string): Promise<TraceLine[]> {
  return (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as TraceLine);
}

/**
 * The examples each step's applied update used: a step abandoned by a loss was traced in the broken
 * ring's epoch and again in the new one; the update that counts is the latest ring epoch's.
 */
export function appliedExamples(lines: TraceLine[]): Map<number, { epoch: number; ringEpoch: number; examples: string[]; ranks: number[] }> {
  const out = new Map<number, { epoch: number; ringEpoch: number; examples: string[]; ranks: number[] }>();
  for (const l of lines) {
    const cur = out.get(l.step);
    if (!cur || l.ringEpoch > cur.ringEpoch) out.set(l.step, { epoch: l.epoch, ringEpoch: l.ringEpoch, examples: [...l.examples], ranks: [l.rank] });
    else if (l.ringEpoch === cur.ringEpoch) {
      cur.examples.push(...l.examples);
      cur.ranks.push(l.rank);
    }
  }
  return out;
}

/** A final model's tensors, by name, as raw bytes. */
export async function finalBytes(outDir: string): Promise<Map<string, Buffer>> {
  const w = (await readModelWeights(join(outDir, 'final'))).tensors;
  return new Map([...w].map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

/** Asserts the final model in `outDir` has the tensors of the one in `refDir`, bit for bit (`ref` names it in messages). */
export async function assertSameFinal(outDir: string, refDir: string, ref = 'the fault-free run'): Promise<void> {
  const [got, want] = [await finalBytes(outDir), await finalBytes(refDir)];
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [name, w] of want) assert.ok(got.get(name)!.equals(w), `${name} differs from ${ref}`);
}

/** Copies checkpoint step `step` of `fromDir` into `toDir` as its `latest`: a run resumed from it starts after `step`. */
export async function checkpointAt(fromDir: string, step: number, toDir: string): Promise<void> {
  const name = `step-${String(step).padStart(8, '0')}`;
  await cp(join(fromDir, name), join(toDir, name), { recursive: true });
  await writeFile(join(toDir, 'latest'), name);
}

/** The pid of the worker the coordinator assigned `rank` (from its "rank r = host-pid-hex @" log line). */
export function pidOfRank(output: string, rank: number): number | undefined {
  const m = new RegExp(`rank ${rank} = [^ ]+-(\\d+)-[0-9a-f]+ @`).exec(output);
  return m ? Number(m[1]) : undefined;
}

/** One more `ringtune worker` process for job `job` on NATS `url` (a replacement or a scale-up). */
export async function startWorker(job: string, url: string, secret: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; output: () => string; exit: Promise<number> }> {
  const [ringPort, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [CLI, 'worker', '--nats', url, '--job', job, '--ring-host', '127.0.0.1', '--ring-port', String(ringPort), '--metrics-port', String(metricsPort), '--threads', '1'], {
    env: { ...process.env, ...RING_PROCESS_ENV, RINGTUNE_JOB_SECRET: secret, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  return { child, output: () => out, exit };
}
