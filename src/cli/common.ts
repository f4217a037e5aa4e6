/** Shared CLI plumbing: backend start-up, typed-error reporting, number parsing, job overrides, signals. */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { JobOverrides } from '../config/overrides.ts';
import { parseThreads, type Threads } from '../config/compile.ts';
import { RingtuneError } from '../errors.ts';
import { hubOptionsFromEnv } from '../hub/hub-options.ts';
import { resolveModelArg } from '../hub/resolve.ts';
import { BACKENDS, backendChoiceFrom, initBackend, setThreads, type BackendInfo } from '../model/backend.ts';

/** Help of every --model flag. */
export const MODEL_HELP = 'model directory, or a Hugging Face hub model org/name[@revision] (downloaded into the HF cache; HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE honoured)';

/** --model -> a directory: a local one as typed, a hub id resolved (downloaded if need be) into the HF cache. */
export const modelDirArg = (value: string): Promise<string> => resolveModelArg(value, hubOptionsFromEnv());

/** --adapter of generate, classify, serve and eval. */
export const ADAPTER_HELP = "a LoRA adapter directory (PEFT layout, e.g. a LoRA run's <output>/final) applied to --model; --model may itself name an adapter directory whose base_model_name_or_path is a local model";

export const BACKEND_HELP = `tfjs backend: auto | ${BACKENDS.join(' | ')}`;

/**
 * Selects the tfjs backend (flag, else RINGTUNE_BACKEND, else auto). `threads` is set first so the
 * start-up line names the count the native engine runs with.
 */
export async function startBackend(flag: string | undefined, threads?: number): Promise<BackendInfo> {
  if (threads !== undefined) await setThreads(threads);
  return initBackend(backendChoiceFrom(flag ?? process.env.RINGTUNE_BACKEND));
}

/** All cores of this machine: the `auto` thread count of a process that has the machine to itself. */
export const allCores = (): number => availableParallelism();

export function threadsArg(value: string): Threads {
  try {
    return parseThreads(value, '--threads');
  } catch (err) {
    // commander prefixes the option (and the variable, for RINGTUNE_THREADS) to this message.
    throw new InvalidArgumentError((err as Error).message.replace(/^--threads: /, ''));
  }
}

/** --threads, also read from RINGTUNE_THREADS (the flag wins); precedence over the job spec: threadsFor. */
export const threadsOption = (auto = 'all cores', hasJob = true) =>
  new Option('--threads <n>', `cores the native engine uses: a positive integer or auto (${auto})${hasJob ? "; overrides the job's `threads`" : ''}`)
    .env('RINGTUNE_THREADS').argParser(threadsArg);

export function intArg(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}"`);
    return n;
  };
}

export function floatArg(min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got "${value}"`);
    return n;
  };
}

/**
 * Runs a command body; RingtuneErrors print as one line (they already say what to do), anything
 * else with its stack, which is a bug to report.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof RingtuneError) {
        console.error(`error: ${err.message}`);
      } else {
        console.error('internal error (please report):', err);
      }
      process.exit(1);
    }
  };
}

/**
 * --output and repeatable --set on every command that runs a job file (train, local, coordinator);
 * compile.ts loadJobFile applies them before validation.
 */
export function withOverrides(c: Command): Command {
  return c
    .option('--output <dir>', "write the run's outputs here instead of the job's `output` (relative to the working directory)")
    .option('--set <key=value>', 'override a job field, e.g. --set training.lr=3e-4 --set training.max_steps=200 (repeatable; YAML values, paths relative to the job file)',
      (v: string, prev: string[] = []) => [...prev, v]);
}

export const overridesOf = (o: { output?: string; set?: string[] }): JobOverrides => ({ output: o.output, set: o.set });

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/**
 * SIGTERM / SIGINT ask a run to stop gracefully: the returned signal aborts with the signal's name
 * (the run finishes its step, checkpoints and returns); a second signal exits at once with 128 + its
 * number. `exitCode()` is what the process should exit with once the run has returned.
 */
export function stopOnSignals(): { stop: AbortSignal; exitCode: () => number | undefined; dispose: () => void } {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 15));
    received = signal;
    console.error(`[ringtune] ${signal}: stopping after the current step (again to exit at once)`);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stop: controller.signal,
    exitCode: () => (received ? 128 + (SIGNAL_NUMBERS[received] ?? 15) : undefined),
    dispose: () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); },
  };
}
