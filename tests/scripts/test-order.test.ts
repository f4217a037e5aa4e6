/**
 * scripts/run-tests.mjs's order and timing: the reporter writes each file's real wall time (a file
 * that sleeps 400 ms is measured at >= 400 ms, a failing file is marked not ok), the update script turns
 * a run into hints, and the order puts the longest first with unknown files at the one-file budget.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
// @ts-expect-error: a plain .mjs script without types
import { UNKNOWN_S, longestFirst, tailOf } from '../../scripts/test-order.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
// A node --test started from a test file would report to ours (NODE_TEST_CONTEXT): this one runs on its own.
const { NODE_TEST_CONTEXT: _context, ...outsideTest } = process.env;
const dir = mkdtempSync(join(tmpdir(), 'ringtune-test-order-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('longest first by the hints; a file without a hint counts as UNKNOWN_S; ties in name order', () => {
  const hints = { 'tests/a.test.ts': 5, 'tests/b.test.ts': 300, 'tests/c.test.ts': 5, 'tests/d.test.ts': 90 };
  assert.equal(UNKNOWN_S, 60);
  assert.deepEqual(longestFirst(['tests/e.test.ts', 'tests/c.test.ts', 'tests/a.test.ts', 'tests/d.test.ts', 'tests/b.test.ts'], hints),
    ['tests/b.test.ts', 'tests/d.test.ts', 'tests/e.test.ts', 'tests/a.test.ts', 'tests/c.test.ts']);
});

test('tail: the time the last file ran after every other had ended', () => {
  const rows = [
    { file: 'x', startMs: 0, endMs: 9000, durationMs: 9000 },
    { file: 'y', startMs: 0, endMs: 4000, durationMs: 4000 },
    { file: 'z', startMs: 4000, endMs: 6500, durationMs: 2500 },
  ];
  assert.deepEqual(tailOf(rows, 2, 2), { tailS: 2.5, last: 'x', slowest: [{ file: 'x', s: 9 }, { file: 'y', s: 4 }] });
  assert.equal(tailOf(rows, 1).tailS, 0, 'one at a time has no idle slot');
  assert.equal(tailOf([], 2), undefined);
});

test('the reporter measures each file by its process; update-test-durations turns a run into hints', () => {
  writeFileSync(join(dir, 'slow.test.mjs'), "import test from 'node:test';\ntest('slow', () => new Promise((r) => setTimeout(r, 400)));\n");
  writeFileSync(join(dir, 'bad.test.mjs'), "import test from 'node:test';\ntest('bad', () => { throw new Error('no'); });\n");
  const out = join(dir, 'durations.jsonl');
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=tap', '--test-reporter-destination=stdout',
    `--test-reporter=${join(ROOT, 'scripts/file-durations-reporter.mjs')}`, `--test-reporter-destination=${out}`, 'slow.test.mjs', 'bad.test.mjs'],
  { cwd: dir, encoding: 'utf8', env: outsideTest });
  assert.equal(r.status, 1, 'bad.test.mjs fails the run');
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).sort((a, b) => a.file.localeCompare(b.file));
  assert.deepEqual(rows.map((x) => [x.file, x.ok]), [['bad.test.mjs', false], ['slow.test.mjs', true]]);
  const slow = rows[1];
  assert.ok(slow.durationMs >= 400 && slow.endMs - slow.startMs >= 400, JSON.stringify(slow));
  assert.ok(slow.durationMs < 60_000);

  // Hints: measured files get their seconds; a file that no longer exists is dropped; others kept.
  const hints = join(dir, 'hints.json');
  writeFileSync(hints, JSON.stringify({ 'gone.test.mjs': 7, 'bad.test.mjs': 99, 'kept.test.mjs': 3 }));
  writeFileSync(join(dir, 'kept.test.mjs'), '');
  const u = spawnSync(process.execPath, [join(ROOT, 'scripts/update-test-durations.mjs'), out], { cwd: dir, encoding: 'utf8', env: { ...process.env, RINGTUNE_TEST_HINTS: hints } });
  assert.equal(u.status, 0, u.stderr);
  const got = JSON.parse(readFileSync(hints, 'utf8'));
  assert.deepEqual(Object.keys(got), ['bad.test.mjs', 'kept.test.mjs', 'slow.test.mjs']);
  assert.equal(got['kept.test.mjs'], 3);
  assert.equal(got['slow.test.mjs'], Math.round(slow.durationMs / 100) / 10);

  writeFileSync(join(dir, 'broken.jsonl'), '{"file":"a","durationMs":1}\nnot json\n');
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts/update-test-durations.mjs'), 'broken.jsonl'], { cwd: dir, encoding: 'utf8', env: { ...process.env, RINGTUNE_TEST_HINTS: hints } });
  assert.notEqual(b.status, 0);
  assert.match(b.stderr, /broken\.jsonl:2: not a JSON line/);
});
