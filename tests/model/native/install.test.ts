/**
 * The install step of the native engine (native/build.mjs, the root postinstall of `npm ci`): where it
 * cannot build, it says why, writes native/build/skipped.txt, removes any stale addon and exits 0, and
 * the backend chain then names that reason when it skips 'native'. Runs on a temporary copy of
 * native/build.mjs and src/ (the real build takes a minute and is checked by `npm ci` itself).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');

function tempProject(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-install-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'native'));
  cpSync(join(ROOT, 'native', 'build.mjs'), join(dir, 'native', 'build.mjs'));
  cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) cpSync(join(ROOT, f), join(dir, f));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

function runBuild(dir: string, env: Record<string, string>) {
  const { RINGTUNE_NATIVE: _n, RINGTUNE_NATIVE_BLAS_HEADER: _h, ...base } = process.env;
  return spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { cwd: dir, encoding: 'utf8', env: { ...base, ...env }, timeout: 60_000 });
}

test('RINGTUNE_NATIVE=0: skipped with the reason logged and written, exit 0', (t) => {
  const dir = tempProject(t);
  const r = runBuild(dir, { RINGTUNE_NATIVE: '0' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /\[ringtune\] native engine not built: RINGTUNE_NATIVE=0/);
  assert.equal(readFileSync(join(dir, 'native', 'build', 'skipped.txt'), 'utf8').trim(), 'RINGTUNE_NATIVE=0');
});

test('no OpenBLAS headers: skipped naming libopenblas-dev, a stale addon is removed, then the backend chain names the reason', (t) => {
  const dir = tempProject(t);
  const stale = join(dir, 'native', 'build', 'Release', 'ringtune_native.node');
  mkdirSync(join(dir, 'native', 'build', 'Release'), { recursive: true });
  writeFileSync(stale, 'stale');
  const r = runBuild(dir, { RINGTUNE_NATIVE_BLAS_HEADER: join(dir, 'no-such', 'cblas.h') });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /native engine not built: OpenBLAS headers not found .*libopenblas-dev/);
  assert.match(readFileSync(join(dir, 'native', 'build', 'skipped.txt'), 'utf8'), /^OpenBLAS headers not found/);
  assert.equal(existsSync(stale), false, 'the stale addon must not be loaded after a skip');

  writeFileSync(join(dir, 'probe.ts'), "import { initBackend } from './src/model/backend.ts';\nconst b = await initBackend('auto');\nconsole.log(JSON.stringify(b));\n");
  const { RINGTUNE_BACKEND: _b, ...env } = process.env;
  const p = spawnSync(process.execPath, ['--import', 'tsx', 'probe.ts'], { cwd: dir, encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(p.status, 0, p.stderr);
  const info = JSON.parse(p.stdout.trim().split('\n').pop()!) as { name: string; skipped: string[] };
  assert.notEqual(info.name, 'native');
  assert.ok(info.skipped.some((s) => /^native: OpenBLAS headers not found/.test(s)), info.skipped.join('; '));
  assert.match(p.stderr, /\[ringtune\] tfjs backend: \S+ .*native: OpenBLAS headers not found/);
});

test('a skip that cannot even be recorded still logs its reason and exits 0', (t) => {
  const dir = tempProject(t);
  // A file where the build folder should be: mkdir/writeFile fail inside skip() itself.
  writeFileSync(join(dir, 'native', 'build'), 'not a folder');
  const r = runBuild(dir, { RINGTUNE_NATIVE: '0' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /native engine not built: RINGTUNE_NATIVE=0\n.*cannot record the skip/);
});
