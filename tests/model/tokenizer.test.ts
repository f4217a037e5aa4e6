import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFamilyTokenizer, readDefaultCorpus, writeTokenizerFiles } from '../../src/model/tokenizer-build.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { InputError } from '../../src/errors.ts';
import { rng } from '../rng.ts';

const corpus = readDefaultCorpus();
const gpt2Built = buildFamilyTokenizer('gpt2', 4096);
const llamaBuilt = buildFamilyTokenizer('llama', 2048);
const bertBuilt = buildFamilyTokenizer('bert', 2048);
const gpt2 = Tokenizer.fromJson(gpt2Built.tokenizerJson, gpt2Built.tokenizerConfig);
const llama = Tokenizer.fromJson(llamaBuilt.tokenizerJson, llamaBuilt.tokenizerConfig);
const bert = Tokenizer.fromJson(bertBuilt.tokenizerJson, bertBuilt.tokenizerConfig);

/** Random text from a mix of ASCII, whitespace runs, Latin-1, CJK, emoji and other planes. */
function randomText(next: () => number, length: number): string {
  const pools: Array<() => number> = [
    () => 0x20 + Math.floor(next() * 95),
    () => [0x20, 0x20, 0x0a, 0x09, 0x0d][Math.floor(next() * 5)]!,
    () => 0xa0 + Math.floor(next() * 0x160),
    () => 0x4e00 + Math.floor(next() * 0x5000),
    () => 0x1f300 + Math.floor(next() * 0x300),
    () => 0x1 + Math.floor(next() * 0xd7fe), // anything below the surrogates (controls included)
    () => 0xe000 + Math.floor(next() * 0x10000), // private use, specials, then supplementary planes
  ];
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCodePoint(pools[Math.floor(next() * pools.length)]!());
  return s;
}

test('byte-level BPE round trip is lossless on arbitrary text', () => {
  const fixed = [
    'Hello, world!',
    '  leading and trailing spaces  ',
    'multiple     spaces\tand\ttabs\n\nand blank lines\r\n',
    "it's we'll they're I'd you've",
    'émigré naïve café Ωμέγα Привет',
    '日本語のテキスト 中文 한국어',
    'emoji 🎉🚀 👩‍👩‍👧 flags 🇫🇷 skin 👍🏽',
    'combining e\u0301 and zero\u200bwidth',
    '\u0000 nul and \u007f del and \ufffd replacement',
    '12345 3.14159 -0.5e10',
    '\n',
    ' ',
  ];
  for (const tok of [gpt2, llama]) {
    for (const s of fixed) assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    const next = rng(42);
    for (let i = 0; i < 200; i++) {
      const s = randomText(next, 1 + Math.floor(next() * 60));
      assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    }
  }
  assert.equal(gpt2.decode(gpt2.encode(corpus)), corpus);
  assert.equal(gpt2.decode([]), '');
  assert.deepEqual(gpt2.encode(''), []);
});

// ---- An independent reference encoder: GPT-2's encoder.py, written out plainly. ----------------

/** bytes_to_unicode from GPT-2's encoder.py, transcribed (not shared with the builder). */
function referenceBytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) bs.push(b);
  for (let b = '¡'.charCodeAt(0); b <= '¬'.charCodeAt(0); b++) bs.push(b);
  for (let b = '®'.charCodeAt(0); b <= 'ÿ'.charCodeAt(0); b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return new Map(bs.map((b, i) => [b, String.fromCharCode(cs[i]!)]));
}

/** GPT-2's bpe(): repeatedly merge every occurrence of the lowest-ranked adjacent pair. */
function referenceBpe(word: string[], ranks: Map<string, number>): string[] {
  while (word.length > 1) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
    }
    if (best < 0) break;
    const [a, b] = [word[best]!, word[best + 1]!];
    const merged: string[] = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && word[i] === a && word[i + 1] === b) merged.push(a + b), i++;
      else merged.push(word[i]!);
    }
    word = merged;
  }
  return word;
}

function referenceEncode(text: string, vocab: Record<string, number>, ranks: Map<string, number>, byteMap: Map<number, string>): number[] {
  const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const ids: number[] = [];
  for (const m of text.matchAll(pat)) {
    const symbols = [...Buffer.from(m[0], 'utf8')].map((b) => byteMap.get(b)!);
    for (const piece of referenceBpe(symbols, ranks)) ids.push(vocab[piece]!);
  }
  return ids;
}

test('library encoding matches a plain reference BPE encoder on many words and lines', () => {
  const { model } = gpt2Built.tokenizerJson as { model: { vocab: Record<string, number>; merges: string[] } };
  const ranks = new Map(model.merges.map((m, i) => [m, i]));
  const byteMap = referenceBytesToUnicode();
  const lines = corpus.split('\n').filter((l) => l.length > 0);
  const words = [...new Set(corpus.split(/\s+/))];
  const next = rng(7);
  const extra = Array.from({ length: 100 }, () => randomText(next, 30));
  const samples = [...lines, ...words, ...extra, 'unbelievably antidisestablishmentarianism', 'aaaaaaaaaaaaaaaa', '   x'];
  let tokens = 0;
  for (const s of samples) {
    const expected = referenceEncode(s, model.vocab, ranks, byteMap);
    assert.deepEqual(gpt2.encode(s), expected, JSON.stringify(s));
    tokens += expected.length;
  }
  assert.ok(samples.length > 2000 && tokens > 10_000, `${samples.length} samples, ${tokens} tokens compared`);
});

test('special tokens encode to their single ids and decode back; skipSpecialTokens drops them', () => {
  const text = '<|im_start|>user\nHi there<|im_end|>\n<|endoftext|>';
  const ids = llama.encode(text);
  assert.equal(ids[0], 1);
  assert.ok(ids.includes(2) && ids.at(-1) === 0);
  assert.equal(ids.filter((id) => id <= 2).length, 3);
  assert.equal(llama.decode(ids), text);
  assert.equal(llama.decode(ids, { skipSpecialTokens: true }), 'user\nHi there\n');
  assert.deepEqual(gpt2.encode('<|endoftext|>'), [0]);
  // byte-level tokenizers add nothing around the text (GPT-2 and SmolLM2 behave the same)
  assert.deepEqual(gpt2.encode('hello'), gpt2.encode('hello', { addSpecialTokens: false }));
});

test('decode rejects ids outside the vocabulary', () => {
  assert.throws(() => gpt2.decode([4096]), InputError);
  assert.throws(() => gpt2.decode([-1]), InputError);
  assert.throws(() => gpt2.decode([1.5]), InputError);
});

test('WordPiece: [CLS] ... [SEP], lowercasing, accents, ## continuations, [UNK]', () => {
  const ids = bert.encode('The river flows.');
  assert.equal(ids[0], bert.clsTokenId);
  assert.equal(ids.at(-1), bert.sepTokenId);
  assert.deepEqual([bert.clsTokenId, bert.sepTokenId], [2, 3]);
  assert.deepEqual(bert.encode('The river flows.', { addSpecialTokens: false }), ids.slice(1, -1));
  assert.deepEqual(bert.encode('THE RIVER FLOWS.'), ids);
  assert.deepEqual(bert.encode('café'), bert.encode('cafe'));
  assert.equal(bert.decode(ids, { skipSpecialTokens: true }), 'the river flows.');
  assert.equal(bert.decode(ids), '[CLS] the river flows. [SEP]');

  // A long word the corpus never had is split into a start piece and "##" continuations.
  const pieces = bert.encode('unremarkableness', { addSpecialTokens: false });
  assert.ok(pieces.length > 1);
  const vocab = (bertBuilt.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
  const byId = new Map(Object.entries(vocab).map(([t, id]) => [id, t]));
  const tokens = pieces.map((id) => byId.get(id)!);
  assert.ok(!tokens[0]!.startsWith('##') && tokens.slice(1).every((t) => t.startsWith('##')), tokens.join(' '));
  assert.equal(tokens.map((t, i) => (i === 0 ? t : t.slice(2))).join(''), 'unremarkableness');

  // Characters the corpus never had become [UNK]; the word around them too (WordPiece is per word).
  assert.deepEqual(bert.encode('☃ snow☃man', { addSpecialTokens: false }), [1, 1]);
  assert.equal(bert.unkTokenId, 1);
});

test('chat template renders ChatML exactly', () => {
  const messages = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: '4' },
    { role: 'user', content: 'Thanks!' },
  ];
  const expected =
    '<|im_start|>system\nYou are helpful.<|im_end|>\n' +
    '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
    '<|im_start|>assistant\n4<|im_end|>\n' +
    '<|im_start|>user\nThanks!<|im_end|>\n';
  assert.equal(llama.applyChatTemplate(messages), expected);
  assert.equal(llama.applyChatTemplate(messages, { addGenerationPrompt: true }), expected + '<|im_start|>assistant\n');
  const ids = llama.encode(llama.applyChatTemplate(messages.slice(0, 1)));
  assert.equal(ids[0], llama.bosTokenId);
  assert.equal(ids.at(-2), llama.eosTokenId);
  assert.throws(() => gpt2.applyChatTemplate(messages), (e: unknown) => e instanceof InputError && /chat_template/.test(e.message));
});

test('tokenizer_config special tokens in the hub object form are understood', () => {
  const config = {
    bos_token: { content: '<|im_start|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { content: '<|im_end|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    pad_token: null,
    additional_special_tokens: [{ content: '<|im_start|>' }, { content: '<|im_end|>' }],
    chat_template: [{ name: 'default', template: '{{ bos_token }}{{ messages[0].content }}{{ eos_token }}' }],
  };
  const tok = Tokenizer.fromJson(llamaBuilt.tokenizerJson, config);
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosTokenId, 2);
  assert.equal(tok.padTokenId, undefined);
  assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'x' }]), '<|im_start|>x<|im_end|>');
  // Without any config, conventional names among the special tokens are still found.
  const bare = Tokenizer.fromJson(bertBuilt.tokenizerJson);
  assert.deepEqual([bare.clsTokenId, bare.sepTokenId, bare.padTokenId, bare.unkTokenId], [2, 3, 0, 1]);
});

test('fromDir errors name the missing or malformed file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-tok-'));
  try {
    const expectError = async (sub: string, pattern: RegExp) => {
      await assert.rejects(Tokenizer.fromDir(join(dir, sub)), (e: unknown) => {
        assert.ok(e instanceof InputError, String(e));
        assert.match(e.message, pattern);
        return true;
      });
    };
    await expectError('absent', /absent\/tokenizer\.json/);

    await mkdir(join(dir, 'bad-json'));
    await writeFile(join(dir, 'bad-json', 'tokenizer.json'), '{"model": ');
    await expectError('bad-json', /bad-json\/tokenizer\.json is not valid JSON/);

    await mkdir(join(dir, 'no-model'));
    await writeFile(join(dir, 'no-model', 'tokenizer.json'), '{"version": "1.0"}');
    await expectError('no-model', /no-model\/tokenizer\.json: no "model"/);

    await mkdir(join(dir, 'bad-model'));
    await writeFile(join(dir, 'bad-model', 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: {} } })); // no merges
    await expectError('bad-model', /bad-model\/tokenizer\.json: tokenizers\.js cannot load it/);

    await writeTokenizerFiles(join(dir, 'bad-config'), gpt2Built);
    await writeFile(join(dir, 'bad-config', 'tokenizer_config.json'), '[1, 2');
    await expectError('bad-config', /bad-config\/tokenizer_config\.json is not valid JSON/);

    // tokenizer_config.json is optional
    await writeTokenizerFiles(join(dir, 'json-only'), bertBuilt);
    await rm(join(dir, 'json-only', 'tokenizer_config.json'));
    const tok = await Tokenizer.fromDir(join(dir, 'json-only'));
    assert.equal(tok.vocabSize, 2048);
    assert.equal(tok.chatTemplate, undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
