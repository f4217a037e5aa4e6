import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BYTE_TO_UNICODE,
  buildByteLevelBpe,
  buildFamilyTokenizer,
  buildWordPiece,
  readDefaultCorpus,
  toByteLevel,
  writeTokenizerFiles,
  type BuiltTokenizer,
} from '../../src/model/tokenizer-build.ts';
import { learnBpe } from '../../src/model/bpe-train.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { InputError } from '../../src/errors.ts';

const corpus = readDefaultCorpus();
const corpusBytes = Buffer.byteLength(corpus, 'utf8');

type BpeJson = { added_tokens: Array<{ id: number; content: string; special: boolean }>; model: { vocab: Record<string, number>; merges: string[] } };
const bpeJson = (b: BuiltTokenizer) => b.tokenizerJson as BpeJson;

/** Checks the one rule every built tokenizer keeps: ids are exactly 0..vocabSize-1, each once. */
function assertDenseVocab(built: BuiltTokenizer, vocabSize: number): void {
  const json = bpeJson(built);
  const ids = Object.values(json.model.vocab).sort((a, b) => a - b);
  assert.equal(ids.length, vocabSize, 'vocab entry count');
  ids.forEach((id, i) => assert.equal(id, i, `id ${i} missing or duplicated`));
  for (const t of json.added_tokens) assert.equal(json.model.vocab[t.content], t.id, `added token ${t.content} id`);
  assert.equal(Tokenizer.fromJson(built.tokenizerJson, built.tokenizerConfig).vocabSize, vocabSize);
}

test('the shipped corpus is large enough to train on', () => {
  assert.ok(corpusBytes > 60_000, `corpus is ${corpusBytes} bytes`);
});

test('building is deterministic: the same corpus gives identical JSON', () => {
  for (const family of ['gpt2', 'llama', 'bert'] as const) {
    const a = buildFamilyTokenizer(family, 1024);
    const b = buildFamilyTokenizer(family, 1024);
    assert.equal(JSON.stringify(a), JSON.stringify(b), family);
  }
});

test('vocab ids are exactly 0..vocabSize-1 for every family and several sizes', () => {
  for (const size of [300, 777, 4096]) {
    assertDenseVocab(buildFamilyTokenizer('gpt2', size), size);
    assertDenseVocab(buildFamilyTokenizer('llama', size), size);
  }
  for (const size of [200, 1000, 4096]) assertDenseVocab(buildFamilyTokenizer('bert', size), size);
});

test('special-token id layout per family', () => {
  const gpt2 = Tokenizer.fromJson(buildFamilyTokenizer('gpt2', 512).tokenizerJson, buildFamilyTokenizer('gpt2', 512).tokenizerConfig);
  assert.deepEqual([gpt2.bosTokenId, gpt2.eosTokenId, gpt2.unkTokenId, gpt2.padTokenId], [0, 0, 0, 0]);
  assert.equal(gpt2.tokenToId('!'), 1); // bytes follow the specials in GPT-2's order ('!' first)

  const built = buildFamilyTokenizer('llama', 512);
  const llama = Tokenizer.fromJson(built.tokenizerJson, built.tokenizerConfig);
  assert.deepEqual(
    ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((t) => llama.tokenToId(t)),
    [0, 1, 2],
  );
  assert.deepEqual([llama.bosTokenId, llama.eosTokenId, llama.padTokenId, llama.unkTokenId], [1, 2, 2, 0]);
  assert.equal(llama.tokenToId('!'), 3);

  const bertBuilt = buildFamilyTokenizer('bert', 512);
  const bert = Tokenizer.fromJson(bertBuilt.tokenizerJson, bertBuilt.tokenizerConfig);
  assert.deepEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => bert.tokenToId(t)), [0, 1, 2, 3, 4]);
  assert.deepEqual([bert.padTokenId, bert.unkTokenId, bert.clsTokenId, bert.sepTokenId], [0, 1, 2, 3]);
});

test('hand-worked merges on "aaabdaaabac"', () => {
  // One pre-token. Pairs are counted at every position; merging rewrites left to right.
  //   a a  x4 (aaa twice), a b x2, the rest x1            -> merge 1 "a a"
  //   aa a b d aa a b a c: (aa,a)=2 and (a,b)=2 tie; (a,b) has smaller ids (a=64 < aa=256)
  //                                                       -> merge 2 "a b"
  //   aa ab d aa ab a c: (aa,ab)=2 is the only pair seen twice -> merge 3 "aa ab"
  //   aaab d aaab a c: all pairs x1; (a,c)=(64,66) has the smallest ids -> merge 4 "a c"
  //   aaab d aaab ac: (d,aaab)=(67,258) beats (aaab,d) and (aaab,ac) -> merge 5 "d aaab"
  // (ids here are counted without the one special token, which shifts all of them by 1)
  const built = buildByteLevelBpe('aaabdaaabac', { vocabSize: 1 + 256 + 5, specialTokens: ['<s>'] });
  assert.deepEqual(bpeJson(built).model.merges, ['a a', 'a b', 'aa ab', 'a c', 'd aaab']);
  assert.equal(bpeJson(built).model.vocab['daaab'], 261);
});

/**
 * Naive BPE trainer: recounts every pair over every word before each merge. Same rules
 * (max count, ties to the smaller (left id, right id)), none of the incremental bookkeeping.
 */
function naiveMerges(wordCounts: Map<string, number>, alphabet: string[], merges: number): string[] {
  const ids = new Map(alphabet.map((s, i) => [s, i]));
  const words = [...wordCounts].map(([w, n]) => ({ syms: Array.from(w), n }));
  const out: string[] = [];
  for (let m = 0; m < merges; m++) {
    const counts = new Map<string, number>();
    for (const { syms, n } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${syms[i]} ${syms[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + n);
      }
    }
    let best: [string, string] | undefined;
    let bestCount = 0;
    for (const [key, count] of counts) {
      const [a, b] = key.split(' ') as [string, string];
      const better =
        count > bestCount ||
        (count === bestCount && best !== undefined && (ids.get(a)! < ids.get(best[0])! || (a === best[0] && ids.get(b)! < ids.get(best[1])!)));
      if (better) [best, bestCount] = [[a, b], count];
    }
    if (!best) break;
    const [a, b] = best;
    if (!ids.has(a + b)) ids.set(a + b, ids.size);
    out.push(`${a} ${b}`);
    for (const w of words) {
      const merged: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) merged.push(a + b), i++;
        else merged.push(w.syms[i]!);
      }
      w.syms = merged;
    }
  }
  return out;
}

test('incremental trainer learns the same merges as a naive recount-everything trainer', () => {
  const text = corpus.slice(0, 12_000);
  const wordCounts = new Map<string, number>();
  for (const m of text.matchAll(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu)) {
    const w = toByteLevel(m[0]);
    wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  const alphabet = [...BYTE_TO_UNICODE].sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0));
  const fast = learnBpe(wordCounts, { initialSymbols: alphabet, splitWord: (w) => Array.from(w), join: (a, b) => a + b, targetSymbols: 256 + 300 });
  const slow = naiveMerges(wordCounts, alphabet, fast.merges.length);
  assert.equal(fast.merges.length >= 300, true);
  assert.deepEqual(fast.merges.map(([a, b]) => `${a} ${b}`), slow);
});

test('every merge is made of vocab tokens and yields a vocab token (as the Rust BPE model requires)', () => {
  const { model } = bpeJson(buildFamilyTokenizer('gpt2', 4096));
  for (const merge of model.merges) {
    const [a, b] = merge.split(' ') as [string, string];
    assert.ok(a in model.vocab && b in model.vocab && a + b in model.vocab, merge);
  }
});

test('training to 4096 tokens is fast and compresses the corpus well below 1 token per byte', () => {
  const t0 = performance.now();
  const built = buildFamilyTokenizer('gpt2', 4096);
  const ms = performance.now() - t0;
  const tok = Tokenizer.fromJson(built.tokenizerJson, built.tokenizerConfig);
  const tokensPerByte = tok.encode(corpus).length / corpusBytes;
  console.log(`# byte-level BPE 4096 on ${corpusBytes} bytes: ${ms.toFixed(0)} ms, ${tokensPerByte.toFixed(3)} tokens/byte`);
  assert.ok(ms < 10_000, `took ${ms} ms`);
  assert.ok(tokensPerByte < 0.5, `tokens/byte ${tokensPerByte}`);

  const t1 = performance.now();
  const bertBuilt = buildFamilyTokenizer('bert', 4096);
  const bertMs = performance.now() - t1;
  const bert = Tokenizer.fromJson(bertBuilt.tokenizerJson, bertBuilt.tokenizerConfig);
  const bertPerByte = bert.encode(corpus, { addSpecialTokens: false }).length / corpusBytes;
  console.log(`# WordPiece 4096: ${bertMs.toFixed(0)} ms, ${bertPerByte.toFixed(3)} tokens/byte`);
  assert.ok(bertPerByte < 0.5, `WordPiece tokens/byte ${bertPerByte}`);
});

test('a corpus too small to fill the vocab is padded with reserved tokens, still exactly vocabSize ids', () => {
  const bpe = buildByteLevelBpe('tiny tiny text', { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
  assertDenseVocab(bpe, 270);
  const reserved = bpeJson(bpe).added_tokens.filter((t) => t.content.startsWith('<|reserved_special_token_'));
  assert.ok(reserved.length > 0 && reserved.every((t) => t.special));

  const wp = buildWordPiece('tiny tiny text', { vocabSize: 64 });
  assertDenseVocab(wp, 64);
  assert.ok('[unused0]' in bpeJson(wp).model.vocab);
});

test('vocabSize too small for the alphabet is an InputError', () => {
  assert.throws(() => buildFamilyTokenizer('gpt2', 200), InputError);
  assert.throws(() => buildByteLevelBpe('x', { vocabSize: 300, specialTokens: ['a', 'a'] }), InputError);
  assert.throws(() => buildFamilyTokenizer('bert', 6), InputError);
});

test('WordPiece alphabet has every character seen in both forms, then merged pieces', () => {
  const { model } = bpeJson(buildFamilyTokenizer('bert', 2048));
  for (const ch of 'abcdefghijklmnopqrstuvwxyz0123456789.,') {
    assert.ok(ch in model.vocab && `##${ch}` in model.vocab, ch);
  }
  assert.ok('the' in model.vocab, 'frequent word "the"');
  assert.ok(Object.keys(model.vocab).some((t) => t.startsWith('##') && t.length > 4), 'multi-char continuation pieces');
  assert.ok(!('T' in model.vocab), 'uppercase is normalized away');
});

test('writeTokenizerFiles writes the three files atomically and they load back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-tok-'));
  try {
    const built = buildFamilyTokenizer('llama', 600);
    await writeTokenizerFiles(join(dir, 'nested'), built);
    const names = (await readdir(join(dir, 'nested'))).sort();
    assert.deepEqual(names, ['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const text = await readFile(join(dir, 'nested', 'tokenizer.json'), 'utf8');
    assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(built.tokenizerJson)));
    // The file lists vocab in id order, as the Rust library writes it (JSON.parse re-sorts "0".."9").
    const order = [...text.slice(text.indexOf('"vocab": {')).matchAll(/^ {6}"((?:[^"\\]|\\.)*)": (\d+),?$/gm)].map((m) => Number(m[2]));
    assert.equal(order.length, 600);
    order.forEach((id, i) => assert.equal(id, i));
    const config = JSON.parse(await readFile(join(dir, 'nested', 'tokenizer_config.json'), 'utf8'));
    assert.equal(config.tokenizer_class, 'GPT2Tokenizer');
    assert.equal(config.eos_token, '<|im_end|>');
    assert.equal(typeof config.chat_template, 'string');
    const map = JSON.parse(await readFile(join(dir, 'nested', 'special_tokens_map.json'), 'utf8'));
    assert.equal(map.bos_token.content, '<|im_start|>');
    const tok = await Tokenizer.fromDir(join(dir, 'nested'));
    assert.equal(tok.vocabSize, 600);
    assert.equal(tok.eosTokenId, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
