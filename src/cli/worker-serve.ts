/**
 * `ringtune worker --serve`: a worker that serves run after run of the same job name, for a cluster
 * that stays up between runs (the sweep's trials handed to it by `ringtune sweep --cluster`, or
 * several `ringtune coordinator` runs one after another).
 *
 * A supervisor, not a loop inside the worker: every run gets a fresh `ringtune worker` child process
 * (the same command line without --serve), so a run's memory, tfjs state and failure stay its own,
 * as a sweep's trials do (sweep/run-trial.ts). When the child exits, whatever the reason (the run is
 * done, it failed or was aborted, its coordinator is gone, the run had no place for it), a new child
 * starts and joins the next run of the job.
 *   - Crash loops are bounded: a child that exits non-zero within HEALTHY_MS of its start counts as a
 *     crash; consecutive crashes wait 1, 2, 4 ... 30 s before the next start (logged). A run that ends
 *     with exit 0, or lasted HEALTHY_MS, resets the back-off.
 *   - SIGTERM / SIGINT: one SIGTERM to the child, the worker's own semantics: in a run it stops after
 *     the current step (rank 0 checkpoints, the run ends resumable) or, under elastic shrink | wait,
 *     leaves the run at a step boundary; a child still joining exits at once (143). Then the supervisor
 *     exits (143 / 130). A second signal to the supervisor kills the child and exits at once.
 *   - The child runs in its own process group (a terminal's Ctrl-C reaches only the supervisor) with
 *     RINGTUNE_PARENT_PID (util/parent-watch.ts): a supervisor killed outright takes its worker with it.
 *   - --max-runs N (tests, batch jobs): exit after N children, with the last one's exit code.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Option, type Command } from 'commander';
import { PARENT_PID_ENV } from '../util/parent-watch.ts';
import { InputError } from '../errors.ts';
import { intArg } from './common.ts';

export const SERVE_ENV = 'RINGTUNE_WORKER_SERVE';
/** A child that ran at least this long was not crash-looping. */
export const HEALTHY_MS = 60_000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** A worker that has been assigned a rank logs one of these (worker/worker.ts); before it, it is only joining (for the log line). */
const ASSIGNED = /\] (rank \d+\/\d+, run |joins the running run )/;

export interface ServeFlags { serve?: boolean; maxRuns?: number }

/** --serve and --max-runs on the worker command. */
export function withServeOptions(c: Command): Command {
  return c
    // Not commander's .env(): it would take RINGTUNE_WORKER_SERVE=0 for "on" (servingWorker reads it).
    .addOption(new Option('--serve', `serve run after run: a fresh worker process per run joins the next run of the job (a cluster that stays up); or ${SERVE_ENV}=1`))
    .addOption(new Option('--max-runs <n>', 'with --serve: exit after this many runs').argParser(intArg(1)));
}

/** --serve, or RINGTUNE_WORKER_SERVE: 1 / true / yes on, 0 / false / no / empty off, anything else an error naming it. */
export function servingWorker(o: ServeFlags, env: NodeJS.ProcessEnv = process.env): boolean {
  if (o.serve) return true;
  const v = (env[SERVE_ENV] ?? '').trim().toLowerCase();
  if (['', '0', 'false', 'no'].includes(v)) return false;
  if (['1', 'true', 'yes'].includes(v)) return true;
  throw new InputError(`${SERVE_ENV}=${env[SERVE_ENV]}: expected 1, true or yes (serve run after run), or 0, false, no`);
}

/** Back-off before the next start after `crashes` consecutive crashes (0: start at once). */
export function backoffMs(crashes: number): number {
  return crashes === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (crashes - 1));
}

/** The worker's own command line without --serve / --max-runs (argv as process.argv.slice(2)). */
export function childArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--serve' || a.startsWith('--max-runs=')) continue;
    if (a === '--max-runs') {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

export interface ServeOptions {
  /** The child's arguments after the node executable: the CLI script and `worker ...` without --serve. */
  args: string[];
  maxRuns?: number;
  log?: (line: string) => void;
}

/** Runs worker children until a signal (or --max-runs); resolves with the exit code for this process. */
export async function serveWorker(o: ServeOptions): Promise<number> {
  const log = o.log ?? ((l: string) => console.error(l));
  const env: NodeJS.ProcessEnv = { ...process.env, [PARENT_PID_ENV]: String(process.pid) };
  delete env[SERVE_ENV];
  let signal: NodeJS.Signals | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  let assigned = false;
  let wake: (() => void) | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    if (signal) {
      log(`[serve] ${s} again: killing the worker`);
      child?.kill('SIGKILL');
      process.exit(128 + (s === 'SIGINT' ? 2 : 15));
    }
    signal = s;
    log(`[serve] ${s}: ${assigned ? 'the worker stops after the current step (under elastic shrink | wait it leaves the run there; again to kill it), then this process exits' : 'the worker is only joining: exiting now'}`);
    child?.kill('SIGTERM'); // a joining worker exits on it at once (runWorker), nothing to save
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let lastCode = 0;
  let crashes = 0;
  try {
    for (let run = 1; !signal && (o.maxRuns === undefined || run <= o.maxRuns); run++) {
      const started = Date.now();
      assigned = false;
      log(`[serve] run ${run}: starting a worker`);
      // Its own process group: a terminal's Ctrl-C reaches the supervisor only, which forwards exactly one
      // SIGTERM (a second signal would make the worker exit at once, without its checkpoint).
      const c = spawn(process.execPath, [...process.execArgv, ...o.args], { env, stdio: ['ignore', 'inherit', 'pipe'], detached: true });
      child = c;
      createInterface({ input: c.stderr! }).on('line', (line) => {
        if (!assigned && ASSIGNED.test(line)) assigned = true;
        process.stderr.write(line + '\n');
      });
      lastCode = await new Promise<number>((resolve, reject) => {
        c.once('error', reject);
        c.once('close', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
      });
      child = undefined;
      const seconds = (Date.now() - started) / 1000;
      crashes = lastCode === 0 || seconds * 1000 >= HEALTHY_MS ? 0 : crashes + 1;
      if (signal || (o.maxRuns !== undefined && run >= o.maxRuns)) {
        log(`[serve] run ${run}: the worker exited ${lastCode} after ${seconds.toFixed(1)} s`);
        break;
      }
      const wait = backoffMs(crashes);
      log(`[serve] run ${run}: the worker exited ${lastCode} after ${seconds.toFixed(1)} s; ${wait ? `${crashes} quick failure${crashes > 1 ? 's' : ''} in a row: next worker in ${wait / 1000} s` : 'next worker now'}`);
      if (wait) await new Promise<void>((r) => { const t = setTimeout(r, wait); wake = () => { clearTimeout(t); r(); }; });
      wake = undefined;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : lastCode;
}

/** The worker command's --serve branch: this process supervises; each run is `ringtune worker` without --serve. */
export async function runServingWorker(o: ServeFlags): Promise<void> {
  if (o.maxRuns !== undefined && !servingWorker(o)) throw new InputError('--max-runs counts the runs of a serving worker: it needs --serve');
  process.exitCode = await serveWorker({ args: [process.argv[1], ...childArgs(process.argv.slice(2))], maxRuns: o.maxRuns });
}
