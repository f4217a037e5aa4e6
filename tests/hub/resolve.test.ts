/**
 * Hub checkpoints against a hub the test serves on 127.0.0.1 (fake-hub.ts) from model directories
 * made with `ringtune model create`: the downloaded snapshot loads and gives the source's logits
 * exactly; the cache has huggingface_hub's layout; a second run and offline mode fetch nothing;
 * 404 / 401 / offline miss / .bin-only / unreachable endpoint are clear typed errors; a cut-off
 * transfer and a leftover .incomplete are resumed with Range requests; only the needed files are
 * requested; HF_TOKEN goes out as a bearer token; two concurrent resolves fetch each blob once.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { createModelDir } from '../../src/model/create.ts';
import { loadModel, saveModel } from '../../src/model/model-dir.ts';
import { HubAuthError, HubNetworkError, HubNotFoundError, HubOfflineMissError, HubUnsupportedRepoError } from '../../src/hub/hub-errors.ts';
import type { HubOptions } from '../../src/hub/hub-options.ts';
import { resolveHubModel, resolveJobModel, resolveModelArg } from '../../src/hub/resolve.ts';
import { FileProgress } from '../../src/hub/progress.ts';
import { compileJob } from '../../src/config/compile.ts';
import { idsTensor, randomIds, ready } from '../model/helpers.ts';
import { FakeHub, gitOid, readDirFiles } from './fake-hub.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-hub-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Setup { dir: string; src: string; hub: FakeHub; opts: HubOptions; lines: string[] }

/** A tiny GPT-2 served as `org/tiny` (plus a pytorch_model.bin and a README that must never be fetched). */
async function setup(t: TestContext, o: { shardBytes?: number; token?: string } = {}): Promise<Setup & { commit: string }> {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: src, seed: 3 });
  if (o.shardBytes) {
    const { model } = await loadModel(src);
    await saveModel(model, join(dir, 'sharded'), { tokenizerFrom: src, maxShardBytes: o.shardBytes });
    model.dispose();
    await rm(src, { recursive: true });
    await import('node:fs/promises').then((fs) => fs.rename(join(dir, 'sharded'), src));
  }
  const files = await readDirFiles(src);
  files.set('pytorch_model.bin', Buffer.from('pickled weights that must never be fetched'));
  files.set('README.md', Buffer.from('# tiny\n'));
  const hub = await new FakeHub().start();
  t.after(() => hub.stop());
  const commit = hub.addRepo('org/tiny', { files, token: o.token });
  const lines: string[] = [];
  const opts: HubOptions = { endpoint: hub.url, cacheDir: join(dir, 'cache'), offline: false, progress: 'lines', log: (l) => lines.push(l), maxAttempts: 3, retryDelayMs: 0, token: o.token };
  return { dir, src, hub, opts, lines, commit };
}

async function logitsOf(dir: string, ids: number[][]): Promise<Float32Array> {
  const { model } = await loadModel(dir);
  try {
    return tf.tidy(() => model.forward({ ids: idsTensor(ids) })).dataSync() as Float32Array;
  } finally {
    model.dispose();
  }
}

test('download: huggingface_hub cache layout, only the needed files, logits equal the source', async (t) => {
  await ready;
  const { src, hub, opts, commit, lines } = await setup(t);
  const snap = await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts);
  const root = join(opts.cacheDir, 'models--org--tiny');
  assert.equal(snap, join(root, 'snapshots', commit));
  assert.equal((await readFile(join(root, 'refs', 'main'), 'utf8')).trim(), commit);
  const wanted = ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].filter((f) => hub.repos.get('org/tiny')!.files.has(f));
  assert.deepEqual((await readdir(snap)).sort(), wanted);
  // Blobs are named as huggingface_hub names them: sha256 for LFS files, the git blob oid otherwise.
  for (const f of wanted) {
    const body = await readFile(join(src, f));
    const etag = f.endsWith('.safetensors') ? sha256(body) : gitOid(body);
    assert.ok((await lstat(join(snap, f))).isSymbolicLink(), `${f} is a symlink`);
    assert.equal(await readlink(join(snap, f)), `../../blobs/${etag}`);
    assert.deepEqual(await readFile(join(root, 'blobs', etag)), body);
  }
  const requested = hub.contentGets().map((r) => r.path);
  assert.ok(!requested.some((p) => /pytorch_model\.bin|README/.test(p)), `never fetched: ${requested.join(', ')}`);
  assert.ok(requested.some((p) => p.startsWith('/cdn/')), 'the LFS redirect was followed');
  assert.ok(lines.some((l) => /model\.safetensors: done/.test(l)), 'plain progress lines when not a TTY');
  const ids = randomIds(2, 6, 50, 1);
  assert.deepEqual(await logitsOf(snap, ids), await logitsOf(src, ids));

  // Second run: the API is asked for the commit, no file is fetched.
  const before = hub.contentGets().length;
  assert.equal(await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts), snap);
  assert.equal(hub.contentGets().length, before);
  // Pinned to the commit, a complete snapshot needs no request at all.
  const all = hub.log.length;
  assert.equal(await resolveHubModel({ repo: 'org/tiny', revision: commit }, opts), snap);
  assert.equal(hub.log.length, all);
  // Offline: from the cache with no request; a miss names repo, revision and cache.
  assert.equal(await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, { ...opts, offline: true }), snap);
  assert.equal(hub.log.length, all);
  await assert.rejects(resolveHubModel({ repo: 'org/other', revision: 'v2' }, { ...opts, offline: true }), (e: Error) =>
    e instanceof HubOfflineMissError && e.message.includes('org/other@v2') && e.message.includes(opts.cacheDir) && e.message.includes('HF_HUB_OFFLINE'));
  assert.equal(hub.log.length, all);
});

test('an existing local directory wins over a hub id of the same name', async (t) => {
  const { dir, hub, opts } = await setup(t);
  await mkdir(join(dir, 'org', 'tiny'), { recursive: true });
  assert.equal(await resolveModelArg('org/tiny', opts, dir), 'org/tiny');
  assert.equal(hub.log.length, 0);
  assert.equal(await resolveModelArg('./missing', opts, dir), './missing');
  assert.equal(await resolveModelArg('a/b/c', opts, dir), 'a/b/c');
  assert.equal(hub.log.length, 0);
  assert.match(await resolveModelArg('org/tiny', opts, join(dir, 'elsewhere')), /models--org--tiny\/snapshots\/[0-9a-f]{40}$/);
});

test('sharded weights: the index and exactly its shards are fetched, and the model loads', async (t) => {
  await ready;
  const { src, hub, opts } = await setup(t, { shardBytes: 4000 });
  const shards = [...hub.repos.get('org/tiny')!.files.keys()].filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 2, `sharded into ${shards.length}`);
  const snap = await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts);
  for (const s of shards) assert.ok((await readdir(snap)).includes(s));
  const ids = randomIds(1, 5, 50, 2);
  assert.deepEqual(await logitsOf(snap, ids), await logitsOf(src, ids));
});

test('a transfer cut off midway is resumed with a Range request, and a leftover .incomplete too', async (t) => {
  const { src, hub, opts, lines } = await setup(t);
  const body = await readFile(join(src, 'model.safetensors'));
  hub.cutOnce.add('model.safetensors');
  const snap = await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts);
  assert.deepEqual(await readFile(join(snap, 'model.safetensors')), body);
  const cdn = hub.contentGets().filter((r) => r.path === `/cdn/${sha256(body)}` && r.range !== 'bytes=0-0');
  assert.equal(cdn.length, 2, 'one cut transfer, one resumed');
  const resumedAt = Number(/^bytes=(\d+)-\d+$/.exec(cdn[1].range ?? '')?.[1]);
  assert.ok(resumedAt > 0 && resumedAt <= body.length / 2, `resumed at ${cdn[1].range}`);
  assert.ok(lines.some((l) => /cut off/.test(l)));

  // Another process died with 1000 bytes written: the next one asks for the rest only.
  const cache2 = join(opts.cacheDir, '..', 'cache2');
  const blobs = join(cache2, 'models--org--tiny', 'blobs');
  await mkdir(blobs, { recursive: true });
  await writeFile(join(blobs, `${sha256(body)}.incomplete`), body.subarray(0, 1000));
  hub.log.length = 0;
  const snap2 = await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, { ...opts, cacheDir: cache2 });
  assert.deepEqual(await readFile(join(snap2, 'model.safetensors')), body);
  assert.deepEqual(hub.contentGets().filter((r) => r.path.startsWith('/cdn/') && r.range !== 'bytes=0-0').map((r) => r.range), [`bytes=1000-${body.length - 1}`]);

  // A leftover that is not a prefix of the file fails the sha256 check and is fetched again whole.
  const cache3 = join(opts.cacheDir, '..', 'cache3');
  await mkdir(join(cache3, 'models--org--tiny', 'blobs'), { recursive: true });
  await writeFile(join(cache3, 'models--org--tiny', 'blobs', `${sha256(body)}.incomplete`), Buffer.alloc(1000, 7));
  const snap3 = await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, { ...opts, cacheDir: cache3 });
  assert.deepEqual(await readFile(join(snap3, 'model.safetensors')), body);
});

test('two concurrent resolves share the cache: each blob is fetched once', async (t) => {
  const { hub, opts } = await setup(t);
  const [a, b] = await Promise.all([0, 1].map(() => resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts)));
  assert.equal(a, b);
  const full = hub.contentGets().filter((r) => r.range !== 'bytes=0-0' && (r.path.startsWith('/cdn/') || !/safetensors$/.test(r.path)));
  const perPath = new Map<string, number>();
  for (const r of full) perPath.set(r.path, (perPath.get(r.path) ?? 0) + 1);
  assert.ok([...perPath.values()].every((n) => n === 1), JSON.stringify([...perPath]));
  assert.equal(await readdir(join(opts.cacheDir, '.locks', 'models--org--tiny')).then((l) => l.length), 0, 'locks released');
});

test('HF_TOKEN goes out as a bearer token; a gated repo without it says to set HF_TOKEN', async (t) => {
  const { hub, opts } = await setup(t, { token: 'hf_secret123' });
  await assert.rejects(resolveHubModel({ repo: 'org/tiny', revision: 'main' }, { ...opts, token: undefined }), (e: Error) =>
    e instanceof HubAuthError && e.message.includes('HF_TOKEN') && e.message.includes('org/tiny') && e.message.includes(hub.url));
  hub.log.length = 0;
  await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts);
  assert.ok(hub.log.length > 3);
  assert.ok(hub.log.every((r) => r.authorization === 'Bearer hf_secret123'), JSON.stringify(hub.log.map((r) => [r.path, r.authorization])));
});

test('a missing repo or revision is a clear error naming the repo and the endpoint', async (t) => {
  const { hub, opts } = await setup(t);
  await assert.rejects(resolveHubModel({ repo: 'org/nope', revision: 'main' }, opts), (e: Error) =>
    e instanceof HubNotFoundError && e.message.includes('"org/nope"') && e.message.includes(hub.url));
  await assert.rejects(resolveHubModel({ repo: 'org/tiny', revision: 'v9' }, opts), (e: Error) =>
    e instanceof HubNotFoundError && e.message.includes('"v9"'));
});

test('a repo with only .bin weights is refused without fetching them', async (t) => {
  const { hub, opts } = await setup(t);
  hub.addRepo('org/old', { files: new Map([['config.json', Buffer.from('{}')], ['pytorch_model.bin', Buffer.from('x')]]) });
  await assert.rejects(resolveHubModel({ repo: 'org/old', revision: 'main' }, opts), (e: Error) =>
    e instanceof HubUnsupportedRepoError && e.message.includes('pytorch_model.bin') && e.message.includes('safetensors'));
  assert.equal(hub.contentGets().length, 0);
});

test('an unreachable endpoint is a network error that suggests HF_HUB_OFFLINE=1 once cached', async (t) => {
  const { opts } = await setup(t);
  const port = await new Promise<number>((r) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => r(p)); }); });
  const down = { ...opts, endpoint: `http://127.0.0.1:${port}` };
  await assert.rejects(resolveHubModel({ repo: 'org/tiny', revision: 'main' }, down), (e: Error) =>
    e instanceof HubNetworkError && e.message.includes(down.endpoint) && /ECONNREFUSED/.test(e.message) && !e.message.includes('It is cached'));
  await resolveHubModel({ repo: 'org/tiny', revision: 'main' }, opts);
  await assert.rejects(resolveHubModel({ repo: 'org/tiny', revision: 'main' }, down), (e: Error) =>
    e instanceof HubNetworkError && e.message.includes('HF_HUB_OFFLINE=1'));
});

test('resolveJobModel: a hub job gets the snapshot (model kept as written); a directory already there is used as is', async (t) => {
  const { dir, hub, opts, commit } = await setup(t);
  const job = compileJob({ model: 'org/tiny', data: { train: 'train.jsonl', format: 'text' }, training: { max_steps: 1 } }, join(dir, 'job.yaml'));
  assert.deepEqual(job.hub, { repo: 'org/tiny', revision: 'main' });
  const resolved = await resolveJobModel(job, opts);
  assert.equal(resolved.modelDir, join(opts.cacheDir, 'models--org--tiny', 'snapshots', commit));
  assert.equal(resolved.model, 'org/tiny');
  // What a worker sees when the launcher handed it the snapshot: no request.
  hub.log.length = 0;
  assert.equal(await resolveJobModel({ ...job, modelDir: resolved.modelDir }, opts).then((j) => j.modelDir), resolved.modelDir);
  assert.equal(hub.log.length, 0);
});

test('progress: a redrawn bar on a TTY, quarter lines otherwise', () => {
  const bar: string[] = [];
  const p = new FileProgress('bar', (l) => bar.push(l), 'org/x f', 1000, 0);
  p.advance(500);
  p.finish();
  assert.ok(bar.every((l) => l.startsWith('\r') || l === '\n'));
  assert.match(bar.at(-2)!, /\[#{24}\] 100% 0\.0 MB\/0\.0 MB/);
  const lines: string[] = [];
  const q = new FileProgress('lines', (l) => lines.push(l), 'org/x f', 4_000_000, 1_000_000);
  for (let i = 0; i < 30; i++) q.advance(100_000);
  q.finish();
  assert.deepEqual(lines, ['org/x f: resuming at 1.0 MB of 4.0 MB\n', 'org/x f: 50% (2.0 MB of 4.0 MB)\n', 'org/x f: 75% (3.0 MB of 4.0 MB)\n', 'org/x f: done (4.0 MB)\n']);
});
