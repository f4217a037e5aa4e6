/**
 * JSON for a run's records (metrics.jsonl, eval_report.json, trainer_state.json), where a number may
 * be NaN or +-Infinity: a diverged loss, a metric of an empty set, early stopping's initial "best".
 * JSON has no such numbers and JSON.stringify writes them as null, which reads back as "no value" or
 * turns into 0 in arithmetic (a NaN loss reported as 0, perplexity 1). Here they are written as the
 * strings "NaN", "Infinity" and "-Infinity" (the names Python's json and pandas also read), and the
 * readers turn those strings back into numbers.
 */
import { readFile } from 'node:fs/promises';
import { RingtuneError } from '../errors.ts';

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/** JSON.stringify with non-finite numbers as "NaN" / "Infinity" / "-Infinity". */
export function stringifyRecord(value: unknown, space?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), space);
}

/** The number a record field holds: a number, or one of the three strings above; anything else is returned as is. */
export function reviveNumber(v: unknown): unknown {
  return typeof v === 'string' && v in NON_FINITE ? NON_FINITE[v] : v;
}

/**
 * Parses a flat record whose values are numbers except under the keys in `stringKeys` (a
 * metrics.jsonl line: only `type` is a string), reviving the non-finite ones. (Array elements reach a
 * reviver under their index, not their array's key: records with string arrays revive by name.)
 */
export function parseRecord(text: string, stringKeys: readonly string[] = []): unknown {
  return JSON.parse(text, (key, v: unknown) => (stringKeys.includes(key) ? v : reviveNumber(v)));
}

/**
 * The records of an append-only JSON Lines file, each parsed by `parseLine`; a missing file has none.
 * A last line cut short (the process was killed while appending it) is dropped; a malformed line
 * elsewhere is an error naming file:line, `notA` (what a line should be) and `advice`.
 */
export async function readRecordLines<T>(file: string, parseLine: (line: string) => T, notA: string, advice: string): Promise<T[]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const lines = text.split('\n');
  const out: T[] = [];
  lines.forEach((l, i) => {
    if (!l.trim()) return;
    try {
      out.push(parseLine(l));
    } catch (err) {
      if (lines.slice(i + 1).some((rest) => rest.trim())) {
        throw new RingtuneError(`${file}:${i + 1}: not ${notA} (${(err as Error).message}); ${advice}`);
      }
    }
  });
  return out;
}
