/**
 * The prepared-dataset cache against the in-memory path (prepareData, independent of it: it reads
 * the whole file, tokenises in one thread and packs in memory): identical examples (ids, loss masks,
 * labels, sources), eval split, labels and skipped records, for each shipped tokenizer family (GPT-2
 * byte-level BPE, Llama SentencePiece-BPE with byte fallback and its chat template, BERT WordPiece),
 * on worker threads and in-process, with blocks far smaller than a line so every line-splitting path
 * runs. Then the cache's own contract: keyed rebuilds, corrupt and foreign files, one builder.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CompiledJob } from '../../src/config/compile.ts';
import { prepareData, type Example } from '../../src/data/dataset.ts';
import { DataCacheError } from '../../src/data/example-store.ts';
import { openOrBuildCache } from '../../src/data/prepared-cache.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { bertTokenizer, gpt2Tokenizer, llama2Tokenizer } from '../model/hf-tokenizers.ts';
import { job, tempDir } from '../train/fixtures.ts';

async function modelDir(dir: string, name: string, t: { tokenizerJson: object; tokenizerConfig: object }): Promise<string> {
  const out = join(dir, name);
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'tokenizer.json'), JSON.stringify(t.tokenizerJson));
  await writeFile(join(out, 'tokenizer_config.json'), JSON.stringify(t.tokenizerConfig));
  return out;
}

const WORDS = ['the', 'cat', 'there', 'hi', 'sat', 'unaffable', 'ünïcode', '猫', 'the cat', '.'];

/** Records of `format` with every kind of bad line mixed in: blank, malformed, missing field, CRLF, oversize. */
function dataLines(format: string, n: number, seed: number): string {
  const rng = new Rng(seed);
  const text = () => [...Array(1 + rng.int(12))].map(() => WORDS[rng.int(WORDS.length)]).join(' ');
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = rng.int(40);
    if (k === 0) lines.push('');
    else if (k === 1) lines.push('{"text": broken');
    else if (k === 2) lines.push('{}');
    else if (k === 3) lines.push(JSON.stringify({ text: 'x'.repeat(900), prompt: 'p', completion: 'c', label: 'pos', messages: [] }));
    else if (format === 'text') lines.push(JSON.stringify({ text: text() }) + (k === 4 ? '\r' : ''));
    else if (format === 'prompt-completion') lines.push(JSON.stringify({ prompt: text(), completion: ' ' + text() }));
    else if (format === 'label') lines.push(JSON.stringify({ text: text(), label: ['pos', 'neg', 'meh'][rng.int(3)] }));
    else lines.push(JSON.stringify({ messages: [{ role: 'user', content: text() }, { role: 'assistant', content: text() }, ...(k % 2 ? [{ role: 'user', content: text() }, { role: 'assistant', content: text() }] : [])] }));
  }
  return lines.join('\n') + '\n';
}

const CASES = [
  { family: 'gpt2', tok: gpt2Tokenizer, format: 'text', packing: true },
  { family: 'gpt2', tok: gpt2Tokenizer, format: 'prompt-completion', packing: false },
  { family: 'llama2', tok: llama2Tokenizer, format: 'text', packing: false },
  { family: 'llama2', tok: llama2Tokenizer, format: 'prompt-completion', packing: true },
  { family: 'llama2', tok: llama2Tokenizer, format: 'messages', packing: false },
  { family: 'bert', tok: bertTokenizer, format: 'label', packing: false },
] as const;

function sameExamples(got: readonly Example[], want: readonly Example[], what: string): void {
  assert.equal(got.length, want.length, `${what}: example count`);
  for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `${what}: example ${i} (${want[i].source})`);
}

for (const c of CASES) {
  test(`cache == in-memory preparation: ${c.family} ${c.format}${c.packing ? ' packed' : ''}, threads 2 and 0`, async (t) => {
    const dir = await tempDir(t);
    const model = await modelDir(dir, c.family, c.tok());
    const tok = await Tokenizer.fromDir(model);
    const train = join(dir, 'train.jsonl');
    await writeFile(train, dataLines(c.format, 300, c.format.length));
    const spec = (seqLen: number): CompiledJob => job(dir, {
      model, task: c.format === 'label' ? 'classification' : 'causal-lm',
      data: { train, format: c.format, max_seq_len: seqLen, packing: c.packing, eval_fraction: 0.1, on_bad_record: 'skip', max_record_bytes: 600 },
      training: { max_steps: 1, seed: 3 },
    });
    const j = spec(24);
    const want = await prepareData(j, tok);
    assert.ok(want.skipped.length > 5 && want.train.length > 100, 'the data has both kinds of lines');
    for (const threads of [2, 0]) {
      const env = { RINGTUNE_CACHE: join(dir, `cache-${threads}`) };
      const got = await openOrBuildCache(j, tok, undefined, { threads, env, blockBytes: 200 });
      assert.equal(got.built, true);
      sameExamples(got.train.slice(), want.train, `threads ${threads} train`);
      sameExamples(got.eval.slice(), want.eval, `threads ${threads} eval`);
      assert.deepEqual(got.skipped, want.skipped);
      assert.deepEqual(got.labels, want.labels);
      assert.equal(got.stats.skipped, want.skipped.length);
      assert.equal(got.stats.tokens, [...want.train, ...want.eval].reduce((n, e) => n + e.tokens.length, 0));
      got.train.close();
    }
  });
}

test('a cache is reused when only non-data options change, rebuilt when an input changes; corrupt or foreign files are errors naming the file', async (t) => {
  const dir = await tempDir(t);
  const model = await modelDir(dir, 'gpt2', gpt2Tokenizer());
  const tok = await Tokenizer.fromDir(model);
  const train = join(dir, 'train.jsonl');
  await writeFile(train, dataLines('text', 60, 1));
  const env = { RINGTUNE_CACHE: join(dir, 'cache') };
  const spec = (data: Record<string, unknown>, training: Record<string, unknown> = {}) =>
    job(dir, { model, data: { train, format: 'text', max_seq_len: 16, on_bad_record: 'skip', ...data }, training: { max_steps: 1, ...training } });

  const first = await openOrBuildCache(spec({}), tok, undefined, { env });
  assert.equal(first.built, true);
  const again = await openOrBuildCache(spec({}, { lr: 1e-2, global_batch: 16, micro_batch: 4 }), tok, undefined, { env });
  assert.equal(again.built, false, 'the learning rate and batch are not data inputs');
  assert.equal(again.key, first.key);
  const longer = await openOrBuildCache(spec({ max_seq_len: 32 }), tok, undefined, { env });
  assert.equal(longer.built, true, 'max_seq_len is');
  assert.notEqual(longer.key, first.key);
  await writeFile(train, dataLines('text', 61, 1)); // the data changes
  const edited = await openOrBuildCache(spec({}), tok, undefined, { env });
  assert.equal(edited.built, true);
  assert.notEqual(edited.key, first.key);
  assert.equal(edited.train.length + edited.eval.length > 0, true);
  for (const d of [first, again, longer, edited]) d.train.close();

  // Truncated token file: the size check names it.
  await truncate(join(edited.dir, 'train.tok'), 8);
  await assert.rejects(openOrBuildCache(spec({}), tok, undefined, { env }), (e: unknown) => e instanceof DataCacheError && e.message.startsWith(`${join(edited.dir, 'train.tok')}: 8 bytes`));
  // A foreign index (another cache's) in its place: the key check names it.
  for (const ext of ['idx', 'tok', 'mask', 'src']) await copyFile(join(longer.dir, `train.${ext}`), join(edited.dir, `train.${ext}`));
  await assert.rejects(openOrBuildCache(spec({}), tok, undefined, { env }), (e: unknown) => e instanceof DataCacheError && e.message.startsWith(`${join(edited.dir, 'train.idx')}: built for other inputs`));
  // Not an index at all.
  await writeFile(join(edited.dir, 'train.idx'), 'hello');
  await assert.rejects(openOrBuildCache(spec({}), tok, undefined, { env }), (e: unknown) => e instanceof DataCacheError && e.message.startsWith(`${join(edited.dir, 'train.idx')}: not a ringtune dataset index`));
  // --force rebuilds it.
  const rebuilt = await openOrBuildCache(spec({}), tok, undefined, { env, force: true });
  assert.equal(rebuilt.built, true);
  rebuilt.train.close();
});

test('ranks opening the same missing cache at once: one builds, the others wait and open it', async (t) => {
  const dir = await tempDir(t);
  const model = await modelDir(dir, 'llama2', llama2Tokenizer());
  const tok = await Tokenizer.fromDir(model);
  const train = join(dir, 'train.jsonl');
  await writeFile(train, dataLines('text', 400, 2));
  const j = job(dir, { model, data: { train, format: 'text', max_seq_len: 16, on_bad_record: 'skip' }, training: { max_steps: 1 } });
  const env = { RINGTUNE_CACHE: join(dir, 'cache') };
  const all = await Promise.all([0, 1, 2].map(() => openOrBuildCache(j, tok, undefined, { env, threads: 0 })));
  assert.equal(all.filter((d) => d.built).length, 1);
  assert.deepEqual(all[1].train.slice(), all[0].train.slice());
  assert.deepEqual(await readdir(join(dir, 'cache')), [all[0].key], 'no lock or staging directory left behind');
  for (const d of all) d.train.close();
});

test('cache == in-memory preparation: a CSV (quoted commas, quotes, \\n and \\r\\n inside fields, blank lines), streamed, threads 2 and 0', async (t) => {
  const dir = await tempDir(t);
  const model = await modelDir(dir, 'llama2', llama2Tokenizer());
  const tok = await Tokenizer.fromDir(model);
  const rng = new Rng(9);
  const rows = ['prompt,completion'];
  for (let i = 0; i < 400; i++) {
    const words = () => [...Array(1 + rng.int(8))].map(() => WORDS[rng.int(WORDS.length)]).join(rng.int(5) === 0 ? (rng.int(2) ? '\n' : '\r\n') : ' ');
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    rows.push(`${q(words() + (i % 7 === 0 ? ', "quoted"' : ''))},${q(' ' + words())}`);
    if (i % 13 === 0) rows.push('');
    if (i % 50 === 0) rows.push(`${q('no completion')},""`); // a bad record: empty completion
  }
  const train = join(dir, 'train.csv');
  await writeFile(train, rows.join('\r\n') + '\r\n');
  const j = job(dir, { model, data: { train, format: 'prompt-completion', max_seq_len: 24, eval_fraction: 0.1, on_bad_record: 'skip' }, training: { max_steps: 1, seed: 3 } });
  const want = await prepareData(j, tok);
  assert.ok(want.skipped.length >= 8 && want.train.length > 300, 'good and bad records');
  for (const threads of [2, 0]) {
    const got = await openOrBuildCache(j, tok, undefined, { threads, env: { RINGTUNE_CACHE: join(dir, `cache-${threads}`) } });
    sameExamples(got.train.slice(), want.train, `threads ${threads} train`);
    sameExamples(got.eval.slice(), want.eval, `threads ${threads} eval`);
    assert.deepEqual(got.skipped, want.skipped);
    got.train.close();
    got.eval.close();
  }
});
