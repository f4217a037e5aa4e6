/**
 * The CLI bundle (scripts/bundle.mjs, bin/ringtune.js): built in a copy of the tree that is then moved
 * (each module's import.meta.url must still find proto/, bin/ and assets/ from the new place), used only
 * while it matches the sources, and an edit makes the CLI run the edited sources, never the stale bundle;
 * worker threads' entries follow the same rule.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'ringtune-bundle-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(cwd: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('bundled in one place, moved, still runs; an edited source is run from the sources until rebuilt', () => {
  const first = join(dir, 'a');
  for (const part of ['src', 'bin', 'proto', 'assets', 'scripts', 'package.json']) cpSync(join(ROOT, part), join(first, part), { recursive: true, preserveTimestamps: true });
  symlinkSync(join(ROOT, 'node_modules'), join(first, 'node_modules'));
  assert.equal(run(first, ['scripts/bundle.mjs', '--check']).status, 1, 'nothing built yet');
  const built = run(first, ['scripts/bundle.mjs']);
  assert.match(built.out, /CLI bundled: dist\/ringtune\.mjs \(\d+ sources\)/);
  const bundle = readFileSync(join(first, 'dist', 'ringtune.mjs'), 'utf8');
  assert.match(bundle, /new URL\("\.\.\/src\/control\/messages\.ts", import\.meta\.url\)/, "messages.ts keeps its own URL (control.proto is found from it)");

  const moved = join(dir, 'b');
  renameSync(first, moved);
  assert.equal(run(moved, ['scripts/bundle.mjs', '--check']).status, 0, 'a move keeps it fresh');
  // Loading the bundle runs every module's top level: control.proto and ring.proto are read from the new place.
  const help = run(moved, ['bin/ringtune.js', 'worker', '--help'], { RINGTUNE_BUNDLE: '1' });
  assert.equal(help.status, 0, help.out);
  assert.match(help.out, /Usage: ringtune worker/);

  // Worker threads load their entry's bundle on the same condition (src/worker/thread-boot.mjs).
  const entryOf = (dir: string) => {
    const r = run(dir, ['--input-type=module', '-e', `import { threadEntry } from './bin/bundle-fresh.mjs'; import { pathToFileURL } from 'node:url';
      console.log(JSON.stringify(threadEntry(pathToFileURL('src/worker/heartbeat-thread.ts').href)));`]);
    assert.equal(r.status, 0, r.out);
    return JSON.parse(r.out) as { url: string; bundled: boolean };
  };
  assert.deepEqual(entryOf(moved), { url: pathToFileURL(join(moved, 'dist', 'heartbeat-thread.mjs')).href, bundled: true });

  const main = join(moved, 'src', 'cli', 'main.ts');
  writeFileSync(main, readFileSync(main, 'utf8').replace("'Fine-tune GPT-2,", "'EDITED: fine-tune GPT-2,"));
  const check = run(moved, ['scripts/bundle.mjs', '--check']);
  assert.equal(check.status, 1);
  assert.match(check.out, /stale: src\/cli\/main\.ts changed since the bundle was built/);
  const insist = run(moved, ['bin/ringtune.js', '--help'], { RINGTUNE_BUNDLE: '1' });
  assert.equal(insist.status, 2);
  assert.match(insist.out, /RINGTUNE_BUNDLE=1 but the bundle cannot be used: src\/cli\/main\.ts changed/);
  assert.match(run(moved, ['bin/ringtune.js', '--help']).out, /EDITED: fine-tune/, 'stale: the edited sources ran');
  assert.deepEqual(entryOf(moved), { url: pathToFileURL(join(moved, 'src', 'worker', 'heartbeat-thread.ts')).href, bundled: false }, 'stale: threads take their sources too');

  assert.match(run(moved, ['scripts/bundle.mjs']).out, /CLI bundled/);
  const rebuilt = run(moved, ['bin/ringtune.js', '--help'], { RINGTUNE_BUNDLE: '1' });
  assert.equal(rebuilt.status, 0, rebuilt.out);
  assert.match(rebuilt.out, /EDITED: fine-tune/, 'rebuilt: the bundle has the edit');
});
