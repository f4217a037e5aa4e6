/**
 * Host memory for data is bounded whatever the corpus size (docs/architecture.md, "Prepared-dataset
 * cache"): the live JS heap (after a full GC, sampled at every progress report of the build and
 * while reading every example back) over a corpus 10x larger grows by less than the 10x corpus'
 * extra examples would take in memory. Measured on the live heap, not RSS: V8 lets garbage pile up
 * in proportion to the work done before collecting it, which RSS counts.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { closeCache, openOrBuildCache } from '../../src/data/prepared-cache.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { baseModel, job, ready, tempDir } from '../train/fixtures.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const liveMb = () => {
  gc();
  return process.memoryUsage().heapUsed / 1e6;
};

const WORDS = 'the a cat dog sat ran on by under over wind sea north south rain fair good poor moderate later becoming'.split(' ');

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

test('the cache build and a pass over its examples hold no more live heap for a 10x larger corpus', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  const tok = await Tokenizer.fromDir(model);
  const peak = async (mb: number) => {
    const train = join(dir, `c${mb}.jsonl`);
    await writeFile(train, corpus(mb * 1e6, 7));
    const j = job(dir, { model, data: { train, format: 'text', max_seq_len: 64, packing: true }, training: { max_steps: 1 } });
    const base = liveMb();
    let max = 0;
    let next = 0;
    const d = await openOrBuildCache(j, tok, undefined, {
      threads: 0, env: { RINGTUNE_CACHE: join(dir, 'cache') }, blockBytes: 256 << 10,
      onProgress: (p) => { if (p.bytesDone >= next) { next = p.bytesDone + (128 << 10); max = Math.max(max, liveMb() - base); } },
    });
    let tokens = 0;
    for (let i = 0; i < d.train.length; i++) {
      tokens += d.train.at(i)!.tokens.length;
      if (i % 500 === 0) max = Math.max(max, liveMb() - base);
    }
    closeCache(d);
    return { max, tokens, examples: d.train.length };
  };
  const small = await peak(0.3);
  const large = await peak(3);
  t.diagnostic(`live heap above start: ${small.max.toFixed(1)} MB (0.3 MB corpus, ${small.examples} rows), ${large.max.toFixed(1)} MB (3 MB corpus, ${large.examples} rows)`);
  // The 3 MB corpus' extra packed rows as examples in memory: >= 16 bytes per token (ids and
  // masks as JS arrays of small integers), ~10 MB here. The bound allows a quarter of that.
  const extraInMemoryMb = ((large.tokens - small.tokens) * 16) / 1e6;
  assert.ok(extraInMemoryMb > 8, `${extraInMemoryMb} MB`);
  assert.ok(large.max - small.max < extraInMemoryMb / 4, `live heap grew ${(large.max - small.max).toFixed(1)} MB (the examples would take ${extraInMemoryMb.toFixed(1)} MB)`);
});
