/** Shared CLI plumbing: backend start-up, typed-error reporting, number parsing. */
import { InvalidArgumentError } from 'commander';
import { RingtuneError } from '../errors.ts';
import { backendChoiceFrom, initBackend, type BackendInfo } from '../model/backend.ts';

export async function startBackend(flag: string | undefined): Promise<BackendInfo> {
  return initBackend(backendChoiceFrom(flag ?? process.env.RINGTUNE_BACKEND));
}

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
