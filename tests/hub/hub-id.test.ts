/** Hub ids: what parses, what stays a local path, what the job compiler marks, and the HF_* environment. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileJob } from '../../src/config/compile.ts';
import { parseHubId } from '../../src/hub/hub-id.ts';
import { hubOptionsFromEnv } from '../../src/hub/hub-options.ts';

test('parseHubId: org/name[@revision] and bare legacy names; paths and malformed names are not ids', () => {
  assert.deepEqual(parseHubId('gpt2'), { repo: 'gpt2', revision: 'main' });
  assert.deepEqual(parseHubId('HuggingFaceTB/SmolLM2-135M'), { repo: 'HuggingFaceTB/SmolLM2-135M', revision: 'main' });
  assert.deepEqual(parseHubId('org/name@v1.0'), { repo: 'org/name', revision: 'v1.0' });
  assert.deepEqual(parseHubId('org/name@refs/pr/3'), { repo: 'org/name', revision: 'refs/pr/3' });
  for (const bad of ['a/b/c', 'org/name@', '-org/x', 'org/x.', 'org/a--b', 'org/a..b', 'org/name@../x', 'a b', '', 'org/']) {
    assert.equal(parseHubId(bad), undefined, bad);
  }
});

test('compileJob: a hub id without a local directory of that name is a hub model; model keeps what was written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-hubid-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const jobFile = join(dir, 'job.yaml');
  const spec = (model: string) => ({ model, data: { train: 'train.jsonl', format: 'text' }, training: { max_steps: 1 } });
  const hub = compileJob(spec('org/tiny@v2'), jobFile);
  assert.deepEqual(hub.hub, { repo: 'org/tiny', revision: 'v2' });
  assert.equal(hub.model, 'org/tiny@v2');
  await mkdir(join(dir, 'org', 'tiny'), { recursive: true });
  const local = compileJob(spec('org/tiny'), jobFile);
  assert.equal(local.hub, undefined);
  assert.equal(local.modelDir, join(dir, 'org', 'tiny'));
  assert.equal(compileJob(spec('./model'), jobFile).hub, undefined);
  await writeFile(join(dir, 'gpt2'), 'a file, not a model directory');
  assert.deepEqual(compileJob(spec('gpt2'), jobFile).hub, { repo: 'gpt2', revision: 'main' });
});

test('hubOptionsFromEnv: huggingface_hub variable names and defaults', () => {
  const quiet = { isTTY: false, write: () => true };
  const d = hubOptionsFromEnv({ HF_TOKEN_PATH: '/nonexistent' }, quiet);
  assert.equal(d.endpoint, 'https://huggingface.co');
  assert.equal(d.cacheDir, join(homedir(), '.cache', 'huggingface', 'hub'));
  assert.equal(d.offline, false);
  assert.equal(d.token, undefined);
  assert.equal(d.progress, 'lines');
  const e = hubOptionsFromEnv({ HF_HOME: '/h', HF_ENDPOINT: 'http://127.0.0.1:9/', HF_TOKEN: 'hf_x', HF_HUB_OFFLINE: '1' }, { isTTY: true, write: () => true });
  assert.deepEqual([e.endpoint, e.cacheDir, e.token, e.offline, e.progress], ['http://127.0.0.1:9', '/h/hub', 'hf_x', true, 'bar']);
  assert.equal(hubOptionsFromEnv({ HF_HOME: '/h', HF_HUB_CACHE: '/c' }, quiet).cacheDir, '/c');
});
