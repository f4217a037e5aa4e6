/**
 * data/cache-admin.ts (`ringtune data cache list|prune`): listing names each cache's job, data and
 * size; prune by last use removes only old caches; a cache whose build lock is held (a builder at
 * work) is never removed; a staging directory left by a dead builder goes once its lock is free.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { listCaches, pruneCaches } from '../../src/data/cache-admin.ts';
import { closeCache, openOrBuildCache, tryLock } from '../../src/data/prepared-cache.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { baseModel, job, lmLines, ready, tempDir, writeLines } from '../train/fixtures.ts';

test('cache list and prune: by last use, --all, never a cache being built; dead builders\' staging removed', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  const tok = await Tokenizer.fromDir(model);
  const train = await writeLines(join(dir, 'train.jsonl'), lmLines(40, 1));
  const root = join(dir, 'cache');
  const build = async (name: string, seqLen: number) => {
    const d = await openOrBuildCache(job(dir, { name, model, data: { train, format: 'text', max_seq_len: seqLen }, training: { max_steps: 1 } }), tok, undefined, { env: { RINGTUNE_CACHE: root }, threads: 0 });
    closeCache(d);
    return d;
  };
  const old = await build('old-job', 12);
  const fresh = await build('fresh-job', 16);
  const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
  await utimes(old.dir, tenDaysAgo, tenDaysAgo);
  const staging = join(root, `.${'a'.repeat(32)}.tmp-99999-deadbeef`);
  await mkdir(staging);
  await writeFile(join(staging, 'train.tok'), 'x');

  const listing = await listCaches(root);
  assert.deepEqual(listing.caches.map((c) => c.key).sort(), [old.key, fresh.key].sort());
  const byKey = new Map(listing.caches.map((c) => [c.key, c]));
  assert.equal(byKey.get(old.key)!.job, 'old-job');
  assert.deepEqual(byKey.get(fresh.key)!.data, [train]);
  assert.equal(byKey.get(fresh.key)!.trainExamples, fresh.train.length);
  assert.ok(byKey.get(old.key)!.bytes > old.train.totalTokens * 4, 'size counts the token file at least');
  assert.ok(Date.now() - byKey.get(old.key)!.lastUsedMs > 9 * 86_400_000);
  assert.deepEqual(listing.staging, [`.${'a'.repeat(32)}.tmp-99999-deadbeef`]);

  // Unused for 5 days: only the old one (dry run first: nothing removed).
  const dry = await pruneCaches(root, { unusedMs: 5 * 86_400_000, dryRun: true });
  assert.deepEqual(dry.removed.map((c) => c.key), [old.key]);
  assert.equal((await listCaches(root)).caches.length, 2);
  const pruned = await pruneCaches(root, { unusedMs: 5 * 86_400_000 });
  assert.deepEqual(pruned.removed.map((c) => c.key), [old.key]);
  assert.deepEqual(pruned.kept.map((c) => c.key), [fresh.key]);
  assert.deepEqual(pruned.removedStaging, [`.${'a'.repeat(32)}.tmp-99999-deadbeef`]);

  // A builder holds the fresh cache's lock (a --force rebuild): --all leaves it.
  const lock = await tryLock(join(root, `${fresh.key}.lock`));
  assert.ok(lock);
  const busy = await pruneCaches(root, { all: true });
  assert.deepEqual(busy.removed, []);
  assert.deepEqual(busy.busy.map((c) => c.key), [fresh.key]);
  assert.equal((await listCaches(root)).caches[0].building, true);
  await lock.release();
  const all = await pruneCaches(root, { all: true });
  assert.deepEqual(all.removed.map((c) => c.key), [fresh.key]);
  assert.deepEqual(await readdir(root), [], 'no cache, lock or staging directory left');
});
