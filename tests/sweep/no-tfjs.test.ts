/**
 * The sweep driver runs no model (its trials are child processes), so it must not load tfjs: checked
 * by importing every module of src/sweep/ in a fresh process, as tests/architecture does for the
 * control plane (.dependency-cruiser.cjs checks the same statically).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';

test('importing every module of src/sweep/ loads no tfjs', () => {
  const dir = new URL('../../src/sweep/', import.meta.url);
  const modules = readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => new URL(f, dir).href);
  assert.ok(modules.length >= 8, modules.join(' '));
  const script = `
    import { createRequire } from 'node:module';
    for (const m of ${JSON.stringify(modules)}) await import(m);
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow'));
    console.log(JSON.stringify({ engine: '_tfengine' in globalThis, loaded: loaded.slice(0, 5) }));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), { engine: false, loaded: [] });
});
