/**
 * Runs one trial (one rung of it, for asha) with the commands a user would type, as a child process:
 * `ringtune train trial-NNNN/job.yaml`, `ringtune local ... --workers N`, or `ringtune coordinator
 * ... --nats URL` (the trial handed to a running cluster of `ringtune worker --serve`), with --resume when the
 * trial has a checkpoint to continue from and --overwrite when an interrupted attempt left outputs
 * without one. A child process per trial keeps each trial's memory, tfjs state and failure its own.
 *   - The child runs in its own process group, so a Ctrl-C in the terminal reaches the sweep only,
 *     which forwards exactly one SIGTERM: the trial stops after its step with a checkpoint (a second
 *     signal to `ringtune train` would make it exit at once, without one).
 *   - It is started with RINGTUNE_PARENT_PID (util/parent-watch.ts): a sweep killed outright takes its
 *     trial with it, instead of leaving it training unsupervised.
 * The trial's result is read from what it wrote (metrics.jsonl), not from its terminal output.
 */
import { spawn } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EvalResult } from '../eval/eval-state.ts';
import { readHistoryFile } from '../run/history.ts';
import { CHECKPOINT_NAMES, historyFile, OUTPUT_NAMES } from '../run/outputs.ts';
import { PARENT_PID_ENV } from '../util/parent-watch.ts';
import type { Curves } from './sweep-log.ts';

const CLI = fileURLToPath(new URL('../../bin/ringtune.js', import.meta.url));

export interface TrialRunOptions {
  /** The trial's job.yaml; its folder is the run directory (output: .). */
  jobFile: string;
  dir: string;
  /** Run on a local cluster of this many workers (`ringtune local`); undefined: `ringtune train`. With `cluster`: the run's workers. */
  workers?: number;
  /** Hand the trial to a running cluster: `ringtune coordinator` against the serving workers on this NATS. */
  cluster?: ClusterTarget;
  backend?: string;
  threads?: string;
  /** Printed before every line of the child's log. */
  tag: string;
  log: (line: string) => void;
  /** Aborted: ask the trial to stop (one SIGTERM). */
  stop?: AbortSignal;
}

export interface TrialRun {
  exitCode: number;
  /** true when `stop` asked the trial to stop. */
  stopped: boolean;
  /** The child's last `error:` line, or its last lines when it printed none. */
  error?: string;
  seconds: number;
}

/** A running cluster: its NATS and the file holding the job secret its workers were given (else RINGTUNE_JOB_SECRET*). */
export interface ClusterTarget {
  nats: string;
  secretFile?: string;
}

/** The trial's command line after the CLI script. */
export function trialArgs(o: Pick<TrialRunOptions, 'jobFile' | 'workers' | 'cluster' | 'backend' | 'threads'>, mode: 'resume' | 'overwrite' | 'fresh'): string[] {
  const args = o.cluster
    // Metrics on any free port: trials running at once on this machine must not share one.
    ? ['coordinator', o.jobFile, '--nats', o.cluster.nats, '--metrics-port', '0', ...(o.cluster.secretFile ? ['--secret-file', o.cluster.secretFile] : [])]
    : [o.workers ? 'local' : 'train', o.jobFile];
  if (o.workers) args.push('--workers', String(o.workers));
  if (mode !== 'fresh') args.push(`--${mode}`);
  // The coordinator runs no model: backend and threads are the serving workers' own.
  if (o.backend && !o.cluster) args.push('--backend', o.backend);
  if (o.threads && !o.cluster) args.push('--threads', o.threads);
  return args;
}

const exists = (p: string) => access(p).then(() => true, () => false);

/** How a trial continues: from its checkpoint, over an attempt that left outputs but no checkpoint, or fresh. */
export async function startMode(dir: string): Promise<'resume' | 'overwrite' | 'fresh'> {
  if (await exists(join(dir, 'checkpoints', CHECKPOINT_NAMES.latest))) return 'resume';
  const entries = await readdir(dir).catch(() => [] as string[]);
  const outputs: string[] = [OUTPUT_NAMES.history, OUTPUT_NAMES.finalModel, OUTPUT_NAMES.evalReport, OUTPUT_NAMES.htmlReport, 'checkpoints'];
  return entries.some((f) => outputs.includes(f)) ? 'overwrite' : 'fresh';
}

export async function runTrialProcess(o: TrialRunOptions): Promise<TrialRun> {
  const mode = await startMode(o.dir);
  const args = [CLI, ...trialArgs(o, mode)];
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, [PARENT_PID_ENV]: String(process.pid) },
  });
  const tail: string[] = [];
  let lastError: string | undefined;
  for (const [stream, echo] of [[child.stdout, false], [child.stderr, true]] as const) {
    createInterface({ input: stream }).on('line', (line) => {
      if (echo) o.log(`${o.tag} ${line}`);
      if (/^error: /.test(line)) lastError = line.slice('error: '.length);
      tail.push(line);
      if (tail.length > 8) tail.shift();
    });
  }
  let stopped = false;
  const onStop = () => {
    stopped = true;
    child.kill('SIGTERM');
  };
  if (o.stop?.aborted) onStop();
  else o.stop?.addEventListener('abort', onStop, { once: true });
  const exitCode = await new Promise<number>((res, rej) => {
    child.once('error', rej);
    child.once('close', (code, signal) => res(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
  }).finally(() => o.stop?.removeEventListener('abort', onStop));
  return { exitCode, stopped, error: exitCode === 0 ? undefined : (lastError ?? tail.join(' | ')), seconds: (performance.now() - started) / 1000 };
}

export interface TrialMetrics {
  /** Steps trained (the last train line's step). */
  steps: number;
  eval?: EvalResult;
  curve: Curves;
}

/** A trial's curves and last evaluation (its final one), from its metrics.jsonl. */
export async function readTrialMetrics(dir: string, metric: string): Promise<TrialMetrics> {
  const lines = await readHistoryFile(historyFile(dir));
  const finite = (pts: Array<[number, number]>) => pts.filter(([, y]) => Number.isFinite(y));
  const evals = lines.filter((l) => l.type === 'eval');
  const last = evals.at(-1);
  const evalResult = last && Object.fromEntries(Object.entries(last).filter(([k]) => k !== 'type' && k !== 'step').map(([k, v]) => [k, Number(v)]));
  return {
    steps: lines.filter((l) => l.type === 'train').at(-1)?.step ?? 0,
    eval: evalResult,
    curve: {
      train_loss: finite(lines.filter((l) => l.type === 'train').map((l) => [l.step, Number(l.loss)])),
      metric: finite(evals.filter((l) => l[metric] !== undefined).map((l) => [l.step, Number(l[metric])])),
    },
  };
}
