// Refreshes scripts/test-durations.json, the order hints of scripts/run-tests.mjs, from the per-file
// durations a run wrote (scripts/file-durations-reporter.mjs; run-tests.mjs prints the file's path).
// Usage: node scripts/update-test-durations.mjs <durations.jsonl> ...
// Files measured in the given runs get their latest wall time in seconds (one decimal); files not measured
// keep their hint; hints for files that no longer exist are dropped. Keys are sorted, so a diff reads well.
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { HINTS_FILE, readDurations, readHints } from './test-order.mjs';

const inputs = process.argv.slice(2);
if (inputs.length === 0) {
  console.error('usage: node scripts/update-test-durations.mjs <durations.jsonl> ...');
  process.exit(2);
}
const hints = readHints();
let measured = 0;
for (const input of inputs) {
  for (const row of readDurations(input)) {
    hints[row.file] = Math.round(row.durationMs / 100) / 10;
    measured++;
  }
}
const kept = Object.fromEntries(Object.entries(hints).filter(([file]) => existsSync(file)).sort(([a], [b]) => a.localeCompare(b)));
const tmp = `${HINTS_FILE}.${process.pid}.tmp`;
writeFileSync(tmp, `${JSON.stringify(kept, null, 1)}\n`);
renameSync(tmp, HINTS_FILE);
console.log(`${HINTS_FILE}: ${measured} measured, ${Object.keys(kept).length} files`);
