/**
 * The cache key against stale reuse (cache-key.ts): an edit that keeps the data file's size and
 * mtime (a same-length rewrite with its times put back, as `touch -d` or `cp -p` leave them) must
 * rebuild when it touches the first or last MiB, and `verify` (data prepare --verify) must find one
 * anywhere else, by hashing every byte against the sha256 recorded at build.
 */
import assert from 'node:assert/strict';
import { open, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { EDGE_BYTES } from '../../src/data/cache-key.ts';
import { closeCache, openOrBuildCache } from '../../src/data/prepared-cache.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { baseModel, job, ready, tempDir } from '../train/fixtures.ts';

/** The data file's times, whole seconds (utimes keeps them exactly). */
const TIMES = new Date('2026-06-01T12:00:00Z');

/** Overwrites `text` at byte `at` (same length), then puts the file's times back. */
async function sameSizeSameMtimeEdit(file: string, at: number, text: string): Promise<void> {
  const before = await stat(file);
  const fh = await open(file, 'r+');
  await fh.write(text, at, 'utf8');
  await fh.close();
  await utimes(file, TIMES, TIMES);
  const after = await stat(file);
  assert.equal(after.size, before.size);
  assert.equal(after.mtimeMs, before.mtimeMs);
}

test('a same-size, same-mtime edit: rebuilt when in the first or last MiB; in the middle, found by verify', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  const tok = await Tokenizer.fromDir(model);
  const train = join(dir, 'train.jsonl');
  // ~2.6 MiB: short records at the start, in the middle and at the end; filler lines over
  // max_record_bytes in between are skipped without tokenising (cheap to prepare).
  const filler = JSON.stringify({ text: 'f'.repeat(2000) });
  const good = (word: string, i: number) => JSON.stringify({ text: `${word} record ${String(i).padStart(3, '0')}` });
  const lines = [
    ...[...Array(20).keys()].map((i) => good('alpha', i)), ...Array(600).fill(filler),
    ...[...Array(20).keys()].map((i) => good('bravo', i)), ...Array(600).fill(filler),
    ...[...Array(20).keys()].map((i) => good('delta', i)),
  ];
  const text = lines.join('\n') + '\n';
  await writeFile(train, text);
  await utimes(train, TIMES, TIMES);
  assert.ok(text.length > 2 * EDGE_BYTES + 100_000, 'a middle beyond both edges');
  const j = job(dir, { model, data: { train, format: 'text', max_seq_len: 16, on_bad_record: 'skip', max_record_bytes: 600, eval_fraction: 0 }, training: { max_steps: 1 } });
  const env = { RINGTUNE_CACHE: join(dir, 'cache') };
  const build = (verify = false) => openOrBuildCache(j, tok, undefined, { env, threads: 0, verify });
  const sources = async (d: Awaited<ReturnType<typeof build>>) => d.train.slice().map((e) => tok.decode(e.tokens));

  const first = await build();
  assert.equal(first.built, true);
  assert.equal(first.train.length, 60);
  closeCache(first);

  // First MiB: "alpha" -> "ALPHA" in record 0.
  await sameSizeSameMtimeEdit(train, text.indexOf('alpha'), 'ALPHA');
  const head = await build();
  assert.equal(head.built, true, 'an edit in the first MiB rebuilds');
  assert.notEqual(head.key, first.key);
  assert.match((await sources(head))[0], /^ALPHA record 000/);
  closeCache(head);

  // Last MiB: "delta" -> "DELTA" in the last record.
  await sameSizeSameMtimeEdit(train, text.lastIndexOf('delta'), 'DELTA');
  const tail = await build();
  assert.equal(tail.built, true, 'an edit in the last MiB rebuilds');
  assert.match((await sources(tail))[59], /^DELTA record 019/);
  closeCache(tail);

  // The middle: "bravo" -> "BRAVO". The key cannot see it (documented); verify does, and rebuilds.
  const mid = text.indexOf('bravo');
  assert.ok(mid > EDGE_BYTES && mid < text.length - EDGE_BYTES);
  await sameSizeSameMtimeEdit(train, mid, 'BRAVO');
  const unseen = await build();
  assert.equal(unseen.built, false, 'size, mtime and both edges unchanged: reused');
  assert.match((await sources(unseen))[20], /^bravo record 000/);
  closeCache(unseen);
  const verified = await build(true);
  assert.deepEqual(verified.stale, [train]);
  assert.equal(verified.built, true);
  assert.match((await sources(verified))[20], /^BRAVO record 000/);
  closeCache(verified);
  const again = await build(true);
  assert.deepEqual(again.stale, [], 'now every byte matches');
  assert.equal(again.built, false);
  closeCache(again);
});
