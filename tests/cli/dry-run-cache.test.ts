/**
 * `ringtune train --dry-run` through the prepared-dataset cache, on the real command line: it builds
 * the cache (a second dry run finds it), reports the cache's records / tokens / truncated / skipped,
 * with train and eval sizes equal to the in-memory preparation's. Its peak RSS (GNU time's maximum
 * resident set) is reported; the data-memory bound is checked on the builder's live heap in
 * tests/data/cache-memory.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadJobFile } from '../../src/config/compile.ts';
import { prepareData } from '../../src/data/dataset.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { baseModel, ready, tempDir } from '../train/fixtures.ts';

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
const TIME = '/usr/bin/time';
const { RINGTUNE_CACHE: _ignored, ...env } = process.env;

const WORDS = 'the a cat dog sat ran on by under over wind sea north south rain fair good poor moderate later becoming'.split(' ');

/** About `bytes` of JSON Lines text records, ~40 words each, seeded. */
function corpus(bytes: number, seed: number): string {
  const rng = new Rng(seed);
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    const line = JSON.stringify({ text: [...Array(30 + rng.int(20))].map(() => WORDS[rng.int(WORDS.length)]).join(' ') + '.' });
    out.push(line);
    n += line.length + 1;
  }
  return out.join('\n') + '\n';
}

/** The dry run's JSON and its peak RSS in MB. */
function dryRun(jobFile: string): { out: Record<string, unknown>; peakMb: number } {
  const r = spawnSync(TIME, ['-f', 'MAXRSS_KB %M', process.execPath, CLI, 'train', jobFile, '--dry-run'], { encoding: 'utf8', timeout: 120_000, env });
  assert.equal(r.status, 0, r.stderr);
  const kb = /MAXRSS_KB (\d+)/.exec(r.stderr);
  assert.ok(kb, r.stderr);
  return { out: JSON.parse(r.stdout), peakMb: Number(kb[1]) / 1024 };
}

test('train --dry-run builds and reports the cache (records, tokens, truncated, skipped); a second dry run finds it', { skip: !existsSync(TIME) && 'no GNU time' }, async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  const jobFor = async (name: string, mb: number) => {
    await writeFile(join(dir, `${name}.jsonl`), corpus(mb * 1e6, mb));
    const file = join(dir, `${name}.yaml`);
    // max_seq_len 64 cuts every record (~80 tokens): truncated counts them; packing off.
    await writeFile(file, `name: ${name}\nmodel: ${model}\ndata: {train: ${name}.jsonl, format: text, max_seq_len: 64}\ntraining: {max_steps: 1}\n`);
    return file;
  };
  const small = await jobFor('small', 0.3);

  const first = dryRun(small);
  const want = await prepareData(await loadJobFile(small), await Tokenizer.fromDir(model));
  assert.equal(first.out.cache_built, true);
  assert.ok(String(first.out.cache).startsWith(join(dir, '.ringtune-cache')), String(first.out.cache));
  assert.equal(first.out.train, want.train.length);
  assert.equal(first.out.eval, want.eval.length);
  assert.equal(first.out.records, want.train.length + want.eval.length);
  // Cut = longer than 64 with its EOS (the byte-level tokenizer adds no specials): records run 30-50 words.
  const tok = await Tokenizer.fromDir(model);
  const texts = (await readFile(join(dir, 'small.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).text as string);
  const truncated = texts.filter((x) => tok.encode(x).length + 1 > 64).length;
  assert.ok(truncated > 0 && truncated < texts.length && first.out.truncated === truncated, `truncated ${first.out.truncated}, want ${truncated}`);
  assert.equal(first.out.skipped, 0);
  assert.equal(first.out.tokens, [...want.train, ...want.eval].reduce((n, e) => n + e.tokens.length, 0));
  const again = dryRun(small);
  assert.equal(again.out.cache_built, false, 'the second dry run finds the cache');
  assert.equal(again.out.cache, first.out.cache);

  t.diagnostic(`peak RSS of the dry run: ${first.peakMb.toFixed(0)} MB building the cache of a 0.3 MB corpus, ${again.peakMb.toFixed(0)} MB opening it`);
});
