// Runs every tests/**/*.test.ts with node's built-in runner (Node 20 has no --test glob support).
// Usage: node scripts/run-tests.mjs [path-substring ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.test.ts') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = walk('tests').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.RINGTUNE_TEST_CONCURRENCY ?? '2';
const run = (list, env = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...list], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  }).status ?? 1;

let status = run(files);
// The model numerics also run on the pure-JS cpu backend: every fallback backend must pass them.
const numeric = files.filter((f) => /tests\/model\/(forward|gradient|leaks|generate)\.test\.ts$/.test(f));
if (filters.length === 0 && numeric.length > 0) {
  console.log('\n# model numerics again on the pure-JS cpu backend');
  status = run(numeric, { RINGTUNE_BACKEND: 'cpu' }) || status;
}
process.exit(status);
