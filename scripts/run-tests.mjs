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

const started = Date.now();
let status = run(files);
const timings = [`main run (RINGTUNE_BACKEND=${process.env.RINGTUNE_BACKEND ?? 'auto'}): ${((Date.now() - started) / 1000).toFixed(0)} s`];

// The model and training numerics again on each fallback backend: `auto` runs them on the first
// backend that loads (native where it was built), and every backend in the chain must pass them too.
// tests/model/native/ is the native engine's own suite: not rerun elsewhere.
const NUMERIC = /tests\/(model\/(forward|gradient|leaks|generate)|train\/(equivalence|train-step|learn|flat-params))\.test\.ts$/;
const numeric = files.filter((f) => NUMERIC.test(f));
const forced = process.env.RINGTUNE_BACKEND && process.env.RINGTUNE_BACKEND !== 'auto' ? process.env.RINGTUNE_BACKEND : undefined;
if (filters.length === 0 && numeric.length > 0) {
  for (const [backend, what] of [['wasm', 'the wasm backend'], ['cpu', 'the pure-JS cpu backend']]) {
    if (backend === forced) continue; // the main run was this backend already
    console.log(`\n# model and training numerics again on ${what}`);
    const t0 = Date.now();
    status = run(numeric, { RINGTUNE_BACKEND: backend }) || status;
    timings.push(`numerics on ${backend}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}
console.error(`[run-tests] ${timings.join('; ')}`);
process.exit(status);
