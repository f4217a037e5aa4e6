/**
 * The prepared-dataset cache is byte for byte the same whichever tokenizer engine builds it (the fast
 * byte-level BPE encoder or tokenizers.js), in-process or on a worker thread: so the cache format
 * version did not change, and a cache built before the fast encoder existed is still valid. Covers the
 * text format (packed), prompt-completion, the chat-template path (messages, ChatML) and
 * classification, on records of random unicode mixed with real text and the tokenizer's specials.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileJob } from '../../src/config/compile.ts';
import { openOrBuildCache } from '../../src/data/prepared-cache.ts';
import { buildFamilyTokenizer, readDefaultCorpus, writeTokenizerFiles } from '../../src/model/tokenizer-build.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';

const CORPUS_LINES = readDefaultCorpus().split('\n').filter((l) => l.trim());
const ODD = ['🎉👩‍👩‍👧', '日本語 中文', 'e\u0301\u0308', '   \t\t  ', '\u0001\u007f', 'a'.repeat(400), '<|im_start|>', '<|endoftext|>', '<|im_end|> x', "it's we'll"];

function text(rng: Rng): string {
  const parts: string[] = [];
  for (let i = 0, n = 1 + rng.int(4); i < n; i++) parts.push(rng.int(3) ? CORPUS_LINES[rng.int(CORPUS_LINES.length)] : ODD[rng.int(ODD.length)]);
  return parts.join(rng.int(2) ? ' ' : '\n');
}

function records(format: string, n: number, seed: number): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    if (format === 'text') lines.push(JSON.stringify({ text: text(rng) }));
    else if (format === 'prompt-completion') lines.push(JSON.stringify({ prompt: text(rng), completion: ' ' + text(rng) }));
    else if (format === 'label') lines.push(JSON.stringify({ text: text(rng), label: ['pos', 'neg'][rng.int(2)] }));
    else lines.push(JSON.stringify({ messages: [{ role: 'system', content: text(rng) }, { role: 'user', content: text(rng) }, { role: 'assistant', content: text(rng) }] }));
  }
  return lines.join('\n') + '\n';
}

/** Every file of a cache directory; meta.json without its timing and thread count. */
async function cacheFiles(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(dir, e.name), `${rel}${e.name}/`);
      else if (!e.name.endsWith('.lock')) out.set(rel + e.name, await readFile(join(dir, e.name)));
    }
  };
  await walk(root, '');
  for (const [name, bytes] of out) {
    if (!name.endsWith('meta.json')) continue;
    const meta = JSON.parse(bytes.toString('utf8'));
    delete meta.stats?.seconds;
    delete meta.stats?.threads;
    out.set(name, Buffer.from(JSON.stringify(meta)));
  }
  return out;
}

function withoutBuildTime(meta: Buffer): unknown {
  const { builtAt, ...rest } = JSON.parse(meta.toString('utf8')) as { builtAt?: string };
  assert.ok(typeof builtAt === 'string' && !Number.isNaN(Date.parse(builtAt)), 'meta.json records builtAt');
  return rest;
}

const CASES = [
  { family: 'gpt2', format: 'text', packing: true, task: 'causal-lm' },
  { family: 'llama', format: 'prompt-completion', packing: false, task: 'causal-lm' },
  { family: 'llama', format: 'messages', packing: false, task: 'causal-lm' },
  { family: 'gpt2', format: 'label', packing: false, task: 'classification' },
] as const;

for (const c of CASES) {
  test(`the cache's bytes do not depend on the tokenizer engine: ${c.family} ${c.format}`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtune-engine-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const model = join(dir, 'model');
    await mkdir(model);
    await writeTokenizerFiles(model, buildFamilyTokenizer(c.family, 1024));
    const train = join(dir, 'train.jsonl');
    await writeFile(train, records(c.format, 400, c.format.length));
    const job = compileJob({
      model, task: c.task,
      data: { train, format: c.format, max_seq_len: 96, packing: c.packing, eval_fraction: 0.1, on_bad_record: 'skip' },
      training: { max_steps: 1, seed: 5 },
    }, join(dir, 'job.yaml'));
    const runs = [
      { engine: 'library', threads: 0 },
      { engine: 'auto', threads: 0 },
      { engine: 'auto', threads: 1 },
    ] as const;
    const built: Array<Map<string, Buffer>> = [];
    for (const r of runs) {
      const tok = await Tokenizer.fromDir(model, { engine: r.engine });
      assert.equal(tok.engine, r.engine === 'library' ? 'library' : 'byte-level-bpe');
      const root = join(dir, `cache-${r.engine}-${r.threads}`);
      const got = await openOrBuildCache(job, tok, undefined, { threads: r.threads, env: { RINGTUNE_CACHE: root }, blockBytes: 4096 });
      assert.equal(got.built, true);
      assert.ok(got.train.length > 20, `${r.engine}: examples were built`);
      got.train.close();
      built.push(await cacheFiles(root));
    }
    const [want, ...others] = built;
    assert.ok([...want.keys()].some((k) => k.endsWith('train.tok')), 'the cache has a token file');
    for (const [i, got] of others.entries()) {
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${runs[i + 1].engine} threads ${runs[i + 1].threads}: file names`);
      for (const [name, bytes] of want) {
        const what = `${runs[i + 1].engine} threads ${runs[i + 1].threads}: ${name} differs`;
        // meta.json records when the cache was built (`ringtune data cache list`): everything else must match.
        if (name.endsWith('meta.json')) assert.deepEqual(withoutBuildTime(got.get(name)!), withoutBuildTime(bytes), what);
        else assert.ok(bytes.equals(got.get(name)!), what);
      }
    }
  });
}
