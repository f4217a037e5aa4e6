// Runs every tests/**/*.test.ts with node's built-in runner (Node 20 has no --test glob support).
// Usage: node scripts/run-tests.mjs [path-substring ...]
import { existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { longestFirst, readDurations, readHints, tailOf } from './test-order.mjs';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.test.ts') ? [path] : [];
  });
}

// Longest first, by each file's wall time in the last full run (scripts/test-order.mjs): no long file
// left to run alone at the end. scripts/update-test-durations.mjs refreshes the hints from the
// durations file named at the end of a run.
const hints = readHints();

const filters = process.argv.slice(2);
const files = longestFirst(walk('tests').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))), hints);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// The CLI children the tests start run from the esbuild bundle when it matches the sources (bin/ringtune.js):
// bring it up to date first (about a second; without it they run through tsx, slower to start).
spawnSync(process.execPath, [fileURLToPath(new URL('bundle.mjs', import.meta.url))], { stdio: 'inherit' });
const concurrency = process.env.RINGTUNE_TEST_CONCURRENCY ?? '2';
// Each file's start, end and wall time, one JSON line per file (scripts/file-durations-reporter.mjs).
const durationsFile = process.env.RINGTUNE_TEST_DURATIONS ?? join(tmpdir(), `ringtune-test-durations-${process.pid}.jsonl`);
const REPORTER = fileURLToPath(new URL('file-durations-reporter.mjs', import.meta.url));
const testArgs = (list, jobs, durations) => [
  '--import', 'tsx', '--test', `--test-concurrency=${jobs}`, '--test-reporter=spec', '--test-reporter-destination=stdout',
  ...(durations ? [`--test-reporter=${REPORTER}`, `--test-reporter-destination=${durations}`] : []),
  ...list,
];

// The model and training numerics again on each fallback backend: `auto` runs them on the first
// backend that loads (native where it was built), and every backend in the chain must pass them too.
// tests/model/native/ is the native engine's own suite: not rerun elsewhere.
const NUMERIC = /tests\/(model\/(forward|gradient|leaks|generate)|train\/(equivalence|train-step|learn|flat-params))\.test\.ts$/;
const numeric = files.filter((f) => NUMERIC.test(f));
const forced = process.env.RINGTUNE_BACKEND && process.env.RINGTUNE_BACKEND !== 'auto' ? process.env.RINGTUNE_BACKEND : undefined;
const passes = filters.length === 0 && numeric.length > 0
  ? [['wasm', 'the wasm backend'], ['cpu', 'the pure-JS cpu backend']].filter(([backend]) => backend !== forced) // the main run was this backend already
  : [];

// The numerics passes run beside the main run, not after it: one file at a time each, at the lowest CPU
// priority (nice 19), so they take the cores only when the main run leaves them idle (its files spend
// much of their time waiting on timeouts, NATS and child processes) and finish at full speed once it is
// done. Pure computation with no timing in it, they cannot be hurt by waiting. Their output is held and
// printed after the main run's, so each run reads as before.
const nice = spawnSync('nice', ['-n', '0', 'true']).status === 0;
const started = Date.now();
const background = passes.map(([backend, what]) => {
  const args = testArgs(numeric, 1);
  const child = nice
    ? spawn('nice', ['-n', '19', process.execPath, ...args], { env: { ...process.env, RINGTUNE_BACKEND: backend }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { env: { ...process.env, RINGTUNE_BACKEND: backend }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => out.push(d));
  const done = new Promise((resolve) => child.once('close', (code) => resolve({ backend, what, code: code ?? 1, s: (Date.now() - started) / 1000, output: Buffer.concat(out) })));
  return { child, done };
});
const stopBackground = () => { for (const b of background) if (b.child.exitCode === null) b.child.kill('SIGTERM'); };
process.once('SIGINT', stopBackground);
process.once('SIGTERM', stopBackground);

const main = spawn(process.execPath, testArgs(files, concurrency, durationsFile), { stdio: 'inherit' });
let status = await new Promise((resolve) => main.once('close', (code) => resolve(code ?? 1)));
const timings = [`main run (RINGTUNE_BACKEND=${process.env.RINGTUNE_BACKEND ?? 'auto'}): ${((Date.now() - started) / 1000).toFixed(0)} s${tail()}`];
for (const b of background) {
  const r = await b.done;
  console.log(`\n# model and training numerics again on ${r.what} (run beside the main run, at nice 19)`);
  process.stdout.write(r.output);
  status = r.code || status;
  timings.push(`numerics on ${r.backend}: done ${r.s.toFixed(0)} s after the start`);
}
if (background.length) timings.push(`all: ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.error(`[run-tests] ${timings.join('; ')}`);
console.error(`[run-tests] per-file wall times: ${durationsFile} (node scripts/update-test-durations.mjs ${durationsFile} refreshes the order)`);
process.exit(status);

/** The main run's tail and its slowest files, from the durations file. */
function tail() {
  const t = existsSync(durationsFile) ? tailOf(readDurations(durationsFile), Number(concurrency)) : undefined;
  if (!t) return '';
  return ` (tail ${t.tailS.toFixed(0)} s: ${t.last} ended last; slowest: ${t.slowest.map((r) => `${r.file} ${r.s.toFixed(0)} s`).join(', ')})`;
}
