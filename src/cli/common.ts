/** Shared CLI plumbing: backend start-up, typed-error reporting, number parsing. */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import { parseThreads, type Threads } from '../config/compile.ts';
import { RingtuneError } from '../errors.ts';
import { BACKENDS, backendChoiceFrom, initBackend, setThreads, type BackendInfo } from '../model/backend.ts';

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
