/**
 * The CLI with a hub model: `ringtune model info org/tiny` downloads through HF_ENDPOINT into
 * HF_HUB_CACHE (plain progress lines on a pipe), then works with HF_HUB_OFFLINE=1 and no server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createModelDir } from '../../src/model/create.ts';
import { FakeHub, readDirFiles } from './fake-hub.ts';

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
// Async: the hub this test serves runs in this process's event loop.
const run = (args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RINGTUNE_THREADS: '1', ...env } })
    .catch((e: { stdout: string; stderr: string; code: number }) => e);

test('ringtune model info org/tiny: download, then offline from the cache', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-hubcli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await createModelDir({ family: 'llama', preset: 'tiny', out: join(dir, 'src'), seed: 1 });
  const hub = await new FakeHub().start();
  t.after(() => hub.stop());
  hub.addRepo('org/tiny', { files: await readDirFiles(join(dir, 'src')) });
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(dir, 'cache'), HF_TOKEN: '', HF_HUB_OFFLINE: '' };

  const first = await run(['model', 'info', 'org/tiny'], env);
  assert.equal((first as { code?: number }).code ?? 0, 0, first.stderr);
  const info = JSON.parse(first.stdout);
  assert.equal(info.family, 'llama');
  assert.match(info.dir, /models--org--tiny\/snapshots\/[0-9a-f]{40}$/);
  assert.match(first.stderr, /org\/tiny model\.safetensors: done/);

  await hub.stop();
  const offline = await run(['model', 'info', 'org/tiny'], { ...env, HF_HUB_OFFLINE: '1' });
  assert.equal(JSON.parse(offline.stdout).parameters, info.parameters, offline.stderr);
  const miss = await run(['model', 'info', 'org/other@v3'], { ...env, HF_HUB_OFFLINE: '1' });
  assert.notEqual((miss as { code?: number }).code ?? 0, 0);
  assert.match(miss.stderr, /HF_HUB_OFFLINE=1 and org\/other@v3 is not in the hub cache/);
});
