// The order scripts/run-tests.mjs gives node --test, and what a run's per-file wall times say about it.
// node --test starts files in the order given, `concurrency` at a time: a long file started late runs
// alone at the end (the tail), so the longest go first (LPT scheduling).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Each test file's wall seconds from a full run: scripts/test-durations.json, or RINGTUNE_TEST_HINTS (tests). */
export const HINTS_FILE = process.env.RINGTUNE_TEST_HINTS ?? fileURLToPath(new URL('test-durations.json', import.meta.url));

/** A file the hints do not know yet is taken to need this: the budget of one test file, so a new long file is not left to the end. */
export const UNKNOWN_S = 60;

export function readHints(file = HINTS_FILE) {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
}

/** `files` longest first by `hints` (seconds by repo-relative path); ties in name order. */
export function longestFirst(files, hints) {
  const expected = (f) => hints[f.split('\\').join('/')] ?? UNKNOWN_S;
  return [...files].sort().sort((a, b) => expected(b) - expected(a));
}

/**
 * From a run's rows ({file, startMs, endMs, durationMs}, scripts/file-durations-reporter.mjs): the tail
 * (seconds the last file ran after every other had ended: a slot idle), the file that ended last and
 * the slowest files.
 */
export function tailOf(rows, concurrency, top = 5) {
  if (rows.length === 0) return undefined;
  const ends = rows.map((r) => r.endMs).sort((a, b) => b - a);
  return {
    tailS: rows.length > 1 && concurrency > 1 ? (ends[0] - ends[1]) / 1000 : 0,
    last: rows.find((r) => r.endMs === ends[0]).file,
    slowest: [...rows].sort((a, b) => b.durationMs - a.durationMs).slice(0, top).map((r) => ({ file: r.file, s: r.durationMs / 1000 })),
  };
}

/** The rows of a durations file (one JSON object per line); a bad line names file:line. */
export function readDurations(file) {
  return readFileSync(file, 'utf8').split('\n').flatMap((line, i) => {
    if (!line.trim()) return [];
    let row;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new Error(`${file}:${i + 1}: not a JSON line: ${err.message}`);
    }
    if (typeof row.file !== 'string' || typeof row.durationMs !== 'number') throw new Error(`${file}:${i + 1}: needs "file" and "durationMs"`);
    return [row];
  });
}
