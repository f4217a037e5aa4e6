/**
 * The fast byte-level BPE encoder (src/model/byte-level-bpe.ts) against tokenizers.js, the library
 * it must agree with id for id: every shipped byte-level family (the GPT-2 and Llama/ChatML tokenizers
 * tokenizer-build.ts writes, the hub-shaped GPT-2, Llama 3 and RoBERTa fixtures), on the shipped
 * corpus, on random unicode (emoji, CJK, combining marks, whitespace runs, control characters, lone
 * surrogates), on very long words and on text around added tokens; then hand-made tokenizer.json files
 * for the corners of the library's behaviour (lstrip/rstrip, longest added-token match, duplicate
 * merges, merges whose result is not in the vocab, unk or none, ignore_merges, add_prefix_space,
 * use_regex false, tied ranks); and that anything else falls back to the library (Llama 2's
 * SentencePiece normalizer, BERT's WordPiece).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFamilyTokenizer, readDefaultCorpus } from '../../src/model/tokenizer-build.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { bertTokenizer, gpt2Tokenizer, llama2Tokenizer, llama3Tokenizer, robertaTokenizer } from './hf-tokenizers.ts';
import { rng } from '../rng.ts';

type Files = { tokenizerJson: object; tokenizerConfig: object };

function pair(files: Files): { fast: Tokenizer; lib: Tokenizer } {
  const fast = Tokenizer.fromJson(files.tokenizerJson, files.tokenizerConfig);
  const lib = Tokenizer.fromJson(files.tokenizerJson, files.tokenizerConfig, { engine: 'library' });
  assert.equal(lib.engine, 'library');
  return { fast, lib };
}

/** Both engines, with and without the post-processor's specials, on every text. */
function assertSameIds(fast: Tokenizer, lib: Tokenizer, texts: Iterable<string>, what: string): number {
  let n = 0;
  for (const text of texts) {
    for (const addSpecialTokens of [false, true]) {
      const want = lib.encode(text, { addSpecialTokens });
      const got = fast.encode(text, { addSpecialTokens });
      if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
        assert.deepEqual(got, want, `${what}: ${JSON.stringify(text).slice(0, 200)} (specials ${addSpecialTokens})`);
      }
      n += want.length;
    }
  }
  return n;
}

/** Random text: ASCII, whitespace runs, Latin-1, combining marks, CJK, emoji, controls, lone surrogates, specials. */
function randomTexts(seed: number, count: number, specials: readonly string[] = []): string[] {
  const next = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const pieces: Array<() => string> = [
    () => String.fromCharCode(0x20 + Math.floor(next() * 95)),
    () => pick([' ', '  ', '   ', '\n', '\n\n', '\t', '\r\n', ' \n ', '\u00a0', '\u3000']),
    () => String.fromCharCode(0xa0 + Math.floor(next() * 0x160)),
    () => 'e\u0301' + pick(['\u0300', '\u0308', '\u20dd', '']),
    () => String.fromCodePoint(0x4e00 + Math.floor(next() * 0x5000)),
    () => pick(['🎉', '🚀', '👩‍👩‍👧', '🇫🇷', '👍🏽', '\u200d', '\ufe0f']),
    () => String.fromCharCode(Math.floor(next() * 0x20)) + '\u007f',
    () => pick(['\ud800', '\udfff', 'a\ud83d', '\ude00b']), // lone surrogates
    () => pick(["'s", "'ll", "'re", ' the', ' there', 'hi', 'he', 'the cat sat', '1234', '3.14', '...', '!!!']),
    () => (specials.length ? pick(specials) : 'x'),
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let s = '';
    const len = Math.floor(next() * 40);
    for (let k = 0; k < len; k++) s += pick(pieces)();
    out.push(s);
  }
  return out;
}

const corpus = readDefaultCorpus();
const LONG_WORDS = ['a'.repeat(5000), 'ab'.repeat(3000), 'the'.repeat(700), ' ' + 'x'.repeat(300), '9'.repeat(1000), '🎉'.repeat(400), 'é'.repeat(600), '\n'.repeat(500)];

const BYTE_LEVEL: Array<{ name: string; files: () => Files; specials: string[] }> = [
  { name: 'gpt2 (built, 4096)', files: () => buildFamilyTokenizer('gpt2', 4096), specials: ['<|endoftext|>'] },
  { name: 'llama / ChatML (built, 2048)', files: () => buildFamilyTokenizer('llama', 2048), specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] },
  { name: 'gpt2 hub fixture', files: gpt2Tokenizer, specials: ['<|endoftext|>'] },
  { name: 'llama3 hub fixture', files: llama3Tokenizer, specials: ['<|begin_of_text|>', '<|end_of_text|>'] },
  { name: 'roberta hub fixture', files: robertaTokenizer, specials: ['<s>', '</s>'] },
];

for (const family of BYTE_LEVEL) {
  test(`fast byte-level BPE == tokenizers.js: ${family.name}`, () => {
    const { fast, lib } = pair(family.files());
    assert.equal(fast.engine, 'byte-level-bpe', fast.engineFallback);
    const lines = corpus.split('\n');
    const tokens = assertSameIds(fast, lib, [...lines, corpus], 'corpus');
    assert.ok(tokens > corpus.length / 8, 'the corpus encodes to tokens');
    assertSameIds(fast, lib, randomTexts(7, 400, family.specials), 'random unicode');
    assertSameIds(fast, lib, LONG_WORDS, 'long words');
    // The same text twice: the second time every word comes from the word cache.
    assertSameIds(fast, lib, randomTexts(7, 50, family.specials), 'random unicode again');
    assertSameIds(fast, lib, ['', ' ', family.specials.join(''), `${family.specials[0]} x ${family.specials[0]}`, `a${family.specials[0]}b`], 'specials');
  });
}

test('more distinct words than the word cache holds: evicted words are merged again, to the same ids', () => {
  const { fast, lib } = pair(buildFamilyTokenizer('gpt2', 1024));
  const next = rng(3);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const word = () => [...Array(3 + Math.floor(next() * 6))].map(() => letters[Math.floor(next() * 26)]).join('');
  const words = [...Array(80_000)].map(word);
  const text = words.join(' ');
  const first = fast.encode(text, { addSpecialTokens: false });
  assert.deepEqual(fast.encode(text, { addSpecialTokens: false }), first);
  assert.deepEqual(lib.encode(text, { addSpecialTokens: false }), first);
});

// ---- Hand-made tokenizer.json files for the library's corners ------------------------------------

const BYTE_SYMBOLS = (() => {
  const sym: Record<string, string> = { ' ': 'Ġ', '\n': 'Ċ' };
  return (s: string) => [...s].map((c) => sym[c] ?? c).join('');
})();

function crafted(o: {
  vocab: string[]; merges: unknown[]; added?: Array<{ content: string; id: number; lstrip?: boolean; rstrip?: boolean; special?: boolean }>;
  unk?: string | null; ignoreMerges?: boolean; addPrefixSpace?: boolean; useRegex?: boolean; config?: object;
}): Files {
  const vocab = Object.fromEntries(o.vocab.map((t, i) => [BYTE_SYMBOLS(t), i]));
  return {
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: (o.added ?? []).map((a) => ({ single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...a })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: o.addPrefixSpace ?? false, trim_offsets: true, use_regex: o.useRegex ?? true },
      post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: o.unk ?? null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: o.ignoreMerges ?? false, vocab, merges: o.merges,
      },
    },
    tokenizerConfig: o.config ?? {},
  };
}

/** Texts over a small alphabet, so merges (and ties between equal pairs) fire all the time. */
function smallAlphabetTexts(seed: number, count: number, alphabet: readonly string[]): string[] {
  const next = rng(seed);
  return [...Array(count)].map(() => [...Array(Math.floor(next() * 30))].map(() => alphabet[Math.floor(next() * alphabet.length)]).join(''));
}

test('corners: tied and out-of-order ranks, duplicate merges (the last one counts), results missing from the vocab, unk or none', () => {
  const alphabet = ['a', 'b', 'c', ' ', 'aa', 'ab', '\n'];
  // "a a" ranks after "aa a" (a merge order no trainer writes, the library still applies it), "b c"
  // is listed twice around "c c" (so "bcc" merges "c c" first), which makes a piece not in the vocab.
  const merges = ['a b', 'aa a', 'a a', 'b c', 'Ġ a', 'ab c', 'c c', 'b c', 'Ġa a', 'bc bc', 'x'];
  const vocab = ['a', 'b', 'c', 'Ġ', 'Ċ', 'ab', 'aa', 'aaa', 'bc', 'Ġa', 'abc', 'Ġaa'];
  for (const unk of [null, 'a']) {
    for (const ignoreMerges of [false, true]) {
      const { fast, lib } = pair(crafted({ vocab: [...vocab, 'bcbc'.slice(0, ignoreMerges ? 4 : 0) || 'zz'], merges, unk, ignoreMerges }));
      assert.equal(fast.engine, 'byte-level-bpe', fast.engineFallback);
      assertSameIds(fast, lib, smallAlphabetTexts(11, 300, alphabet), `unk ${unk} ignore_merges ${ignoreMerges}`);
      assertSameIds(fast, lib, ['aaaa', 'aaaaa', 'ccc', 'cccc', 'bcbc', 'abcabc', 'x y z'], `fixed, unk ${unk}`);
    }
  }
  // New-format merges (pairs as lists).
  const { fast, lib } = pair(crafted({ vocab, merges: merges.map((m) => m.split(' ')) }));
  assertSameIds(fast, lib, smallAlphabetTexts(12, 200, alphabet), 'list merges');
});

test('corners: added tokens with lstrip/rstrip, overlapping contents (longest wins), a content that is also a vocab piece, an emoji first', () => {
  const vocab = ['a', 'b', '<', '>', 'x', 'Ġ', 'Ċ', 'ab'];
  const added = [
    { content: '<x>', id: 20, lstrip: true },
    { content: '<x>>', id: 21, rstrip: true },
    { content: 'ab', id: 22 }, // also vocab piece 7: the added id wins
    { content: ' <y>', id: 23, rstrip: true, lstrip: true },
    { content: '<y>', id: 24, special: false },
    { content: '🎉!', id: 25 }, // starts with a surrogate pair
  ];
  const { fast, lib } = pair(crafted({ vocab, merges: ['a b'], added }));
  assertSameIds(fast, lib, smallAlphabetTexts(13, 400, ['a', 'b', ' ', '  ', '\n', '<x>', '<x>>', ' <y>', '<y>', 'ab', '<', '>', '\t', '🎉', '🎉!', '!', '\ud83c']), 'added tokens');
});

test('corners: add_prefix_space, use_regex false', () => {
  const vocab = ['a', 'b', 'Ġ', 'Ċ', 'Ġa', 'ab', 'Ġab'];
  const texts = smallAlphabetTexts(14, 300, ['a', 'b', ' ', '\n', '<s>']);
  for (const addPrefixSpace of [false, true]) {
    for (const useRegex of [true, false]) {
      const { fast, lib } = pair(crafted({ vocab, merges: ['Ġ a', 'a b', 'Ġa b'], added: [{ content: '<s>', id: 9 }], addPrefixSpace, useRegex }));
      assert.equal(fast.engine, 'byte-level-bpe', fast.engineFallback);
      assertSameIds(fast, lib, texts, `add_prefix_space ${addPrefixSpace} use_regex ${useRegex}`);
    }
  }
});

test('anything the fast encoder does not implement falls back to tokenizers.js, saying why', () => {
  const cases: Array<[string, Files, RegExp]> = [
    ['llama2 (SentencePiece normalizer)', llama2Tokenizer(), /normalizer Sequence/],
    ['bert (WordPiece)', bertTokenizer(), /normalizer BertNormalizer/],
    ['bert (built)', buildFamilyTokenizer('bert', 512), /normalizer BertNormalizer/],
    ['byte_fallback', withModel(gpt2Tokenizer(), { byte_fallback: true }), /byte_fallback/],
    ['fuse_unk', withModel(gpt2Tokenizer(), { fuse_unk: true }), /fuse_unk/],
    ['end_of_word_suffix', withModel(gpt2Tokenizer(), { end_of_word_suffix: '</w>' }), /end_of_word_suffix/],
    ['unk_token not in the vocab', withModel(gpt2Tokenizer(), { unk_token: '<nope>' }), /unk_token/],
    ['remove_space', { ...gpt2Tokenizer(), tokenizerConfig: { remove_space: true } }, /remove_space/],
    ['Split pre-tokenizer', { ...gpt2Tokenizer(), tokenizerJson: { ...(gpt2Tokenizer().tokenizerJson as object), pre_tokenizer: { type: 'Sequence', pretokenizers: [] } } }, /pre_tokenizer Sequence/],
  ];
  for (const [what, files, why] of cases) {
    const { fast, lib } = pair(files);
    assert.equal(fast.engine, 'library', what);
    assert.match(fast.engineFallback ?? '', why, what);
    assertSameIds(fast, lib, ['the cat sat', 'hi there'], what);
  }
  assert.throws(() => Tokenizer.fromJson(gpt2Tokenizer().tokenizerJson, {}, { engine: 'rust' as never }), /unknown tokenizer engine "rust"/);
});

function withModel(files: Files, model: object): Files {
  const json = files.tokenizerJson as { model: object };
  return { ...files, tokenizerJson: { ...json, model: { ...json.model, ...model } } };
}
