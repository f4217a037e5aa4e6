/**
 * The native engine trains like the wasm engine: over 20 steps of GPT-2 and Llama (GQA) training, with
 * accumulation, clipping and AdamW, every step's loss agrees within 1e-5 relative. Each backend runs
 * in its own process (parity-run.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../src/model/native/addon.ts';

const { addon, why } = loadAddon();
const skip = addon ? false : `native engine not built: ${why}`;
const script = fileURLToPath(new URL('./parity-run.ts', import.meta.url));

function run(backend: string): Record<string, number[]> {
  const line = execFileSync(process.execPath, ['--import', 'tsx', script, backend], { encoding: 'utf8', env: { ...process.env, RINGTUNE_THREADS: '2' } })
    .trim().split('\n').at(-1)!;
  const r = JSON.parse(line) as { backend: string; losses: Record<string, number[]> };
  assert.equal(r.backend, backend);
  return r.losses;
}

test('native and wasm losses agree within 1e-5 relative over 20 training steps', { skip, timeout: 240_000 }, () => {
  const native = run('native');
  const wasm = run('wasm');
  for (const family of Object.keys(wasm)) {
    assert.equal(native[family].length, 20);
    assert.ok(wasm[family][19] < wasm[family][0], `${family} learns (${wasm[family][0]} -> ${wasm[family][19]})`);
    native[family].forEach((l, s) => {
      const rel = Math.abs(l - wasm[family][s]) / Math.abs(wasm[family][s]);
      assert.ok(rel <= 1e-5, `${family} step ${s}: native ${l} vs wasm ${wasm[family][s]} (relative ${rel.toExponential(2)})`);
    });
  }
});
