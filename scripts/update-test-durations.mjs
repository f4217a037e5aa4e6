// Refreshes scripts/test-durations.json, the order hints of scripts/run-tests.mjs, from the per-file
// durations a run wrote (scripts/file-durations-reporter.mjs; run-tests.mjs prints the file's path).
// Usage: node scripts/update-test-durations.mjs <durations.jsonl> ...
// Files measured in the given runs get their latest wall time in seconds (one decimal); files not measured
// keep their hint; hints for files that no longer exist are dropped. Keys are sorted, so a diff reads well.
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const HINTS = fileURLToPath(new URL('test-durations.json', import.meta.url));
const inputs = process.argv.slice(2);
if (inputs.length === 0) {
  console.error('usage: node scripts/update-test-durations.mjs <durations.jsonl> ...');
  process.exit(2);
}
const hints = existsSync(HINTS) ? JSON.parse(readFileSync(HINTS, 'utf8')) : {};
let measured = 0;
for (const input of inputs) {
  readFileSync(input, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let row;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new Error(`${input}:${i + 1}: not a JSON line: ${err.message}`);
    }
    if (typeof row.file !== 'string' || typeof row.durationMs !== 'number') throw new Error(`${input}:${i + 1}: needs "file" and "durationMs"`);
    hints[row.file] = Math.round(row.durationMs / 100) / 10;
    measured++;
  });
}
const kept = Object.fromEntries(Object.entries(hints).filter(([file]) => existsSync(file)).sort(([a], [b]) => a.localeCompare(b)));
const tmp = `${HINTS}.${process.pid}.tmp`;
writeFileSync(tmp, `${JSON.stringify(kept, null, 1)}\n`);
renameSync(tmp, HINTS);
console.log(`${HINTS}: ${measured} measured, ${Object.keys(kept).length} files`);
