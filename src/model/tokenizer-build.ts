/**
 * Builds Hugging Face tokenizers (`tokenizer.json` in the format the Rust `tokenizers` library
 * writes, plus `tokenizer_config.json` and `special_tokens_map.json`) from text the project ships,
 * so nothing is downloaded at run time. Building is deterministic: the same corpus and options
 * give byte-identical files.
 *
 * Id layout (the same rule for every family, so ids never depend on the corpus):
 *   byte-level BPE:  [special tokens 0..k-1] [256 byte symbols, GPT-2 order] [merges in rank order]
 *                    [<|reserved_special_token_N|> only if the corpus ran out of pairs]
 *   WordPiece:       [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 [chars] [##chars] [merged pieces]
 *                    [[unusedN] only if the corpus ran out of pairs]
 * Specials first (as SmolLM2 and BERT do; GPT-2 itself puts <|endoftext|> last at 50256) keeps
 * their ids fixed whatever vocabSize is. Special tokens appear both in `model.vocab` and in
 * `added_tokens` with the same id, as in the hub's GPT-2/BERT/SmolLM2 files, so the Rust library
 * and tokenizers.js agree on their ids. The total is always exactly vocabSize ids, 0..vocabSize-1,
 * so a model's embedding table can be sized from it.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { InputError } from '../errors.ts';
import { learnBpe } from './bpe-train.ts';

export type BuiltTokenizer = { tokenizerJson: object; tokenizerConfig: object; specialTokensMap: object };
export type TokenizerFamily = 'gpt2' | 'llama' | 'bert';

/** Special-token roles and metadata written to tokenizer_config.json / special_tokens_map.json. */
export interface TokenizerRoles {
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  chatTemplate?: string;
  tokenizerClass?: string;
  modelMaxLength?: number;
}

export const DEFAULT_CORPUS_URL = new URL('../../assets/corpus/general.txt', import.meta.url);

/** ChatML, exactly as SmolLM2-Instruct ships it. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// ---------------------------------------------------------------------------------------------
// Byte-level BPE (GPT-2, SmolLM2 / Llama-family checkpoints of this project)

/** GPT-2's pre-tokenization regex (identical in the Rust ByteLevel pre-tokenizer and tokenizers.js). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so every byte is one visible character (space -> 'Ġ', '\n' -> 'Ċ').
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
})();

/** The 256 byte symbols in GPT-2's vocab order ('!' first, then ..., the remapped bytes last). */
const BYTE_SYMBOLS_GPT2_ORDER = [...BYTE_TO_UNICODE].sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0));

const utf8 = new TextEncoder();
export function toByteLevel(text: string): string {
  let out = '';
  for (const byte of utf8.encode(text)) out += BYTE_TO_UNICODE[byte];
  return out;
}

export function buildByteLevelBpe(
  corpus: string,
  opts: { vocabSize: number; specialTokens: string[] } & TokenizerRoles,
): BuiltTokenizer {
  const specials = uniqueSpecials(opts.specialTokens);
  const base = specials.length + 256;
  checkVocabSize(opts.vocabSize, base, 'byte-level BPE (special tokens + 256 bytes)');

  // Special tokens are cut out of the text before pre-tokenization, as encoding does.
  const wordCounts = new Map<string, number>();
  for (const piece of splitOnSpecials(corpus, specials)) {
    for (const match of piece.matchAll(GPT2_SPLIT)) {
      const word = toByteLevel(match[0]);
      wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    }
  }
  const learned = learnBpe(wordCounts, {
    initialSymbols: BYTE_SYMBOLS_GPT2_ORDER,
    splitWord: (word) => Array.from(word),
    join: (a, b) => a + b,
    targetSymbols: opts.vocabSize - specials.length,
  });

  const reserved = reservedNames(opts.vocabSize - specials.length - learned.symbols.length, specials, (i) => `<|reserved_special_token_${i}|>`);
  const allSpecials = [...specials]; // ids 0..k-1
  const vocab = orderedVocab([...allSpecials, ...learned.symbols, ...reserved]);
  const addedTokens = [...allSpecials, ...reserved].map((content) => addedToken(vocab.get(content)!, content));

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      // "a b" strings as in GPT-2's files: byte-level symbols never contain a real space.
      merges: learned.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const roles: TokenizerRoles = { tokenizerClass: 'PreTrainedTokenizerFast', ...opts };
  const tokenizerConfig = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder(addedTokens),
    ...roleFields(roles),
    additional_special_tokens: additionalSpecials(specials, roles),
    clean_up_tokenization_spaces: false, // byte-level decoding is lossless; keep it so
    errors: 'replace',
    model_max_length: roles.modelMaxLength ?? 2048,
    tokenizer_class: roles.tokenizerClass,
    ...(roles.chatTemplate !== undefined ? { chat_template: roles.chatTemplate } : {}),
  };
  return { tokenizerJson, tokenizerConfig, specialTokensMap: specialTokensMap(roles, specials) };
}

// ---------------------------------------------------------------------------------------------
// WordPiece (BERT)

export const BERT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
const BERT_NORMALIZER_CONFIG = { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true };

/**
 * BERT-style WordPiece. The vocabulary is learned the way the Rust WordPieceTrainer does it: BPE
 * over the normalized, pre-tokenized words where every non-initial character carries the "##"
 * prefix, so merges produce whole words ("the"), word starts ("comp") and continuations ("##ing").
 * The alphabet is every character seen, in both forms; if that alone would not fit, the rarest
 * characters are left out (they encode as [UNK]).
 */
export function buildWordPiece(corpus: string, opts: { vocabSize: number } & TokenizerRoles): BuiltTokenizer {
  const specials: string[] = [...BERT_SPECIALS];
  checkVocabSize(opts.vocabSize, specials.length + 2, 'WordPiece (5 specials + at least one character)');

  // The same normalizer and pre-tokenizer that encoding runs, so training sees what encode sees.
  const pipeline = new HfTokenizer(wordPieceJson(new Map(), []), {}) as TextPipeline;
  const wordCounts = new Map<string, number>();
  const charCounts = new Map<string, number>();
  for (const line of corpus.split('\n')) {
    for (const word of pipeline.pre_tokenizer(pipeline.normalizer(line))) {
      wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
      for (const ch of word) charCounts.set(ch, (charCounts.get(ch) ?? 0) + 1);
    }
  }
  // Alphabet: most frequent characters first, ties by code point; then sorted by code point.
  const room = Math.floor((opts.vocabSize - specials.length) / 2);
  const chars = [...charCounts.entries()]
    .sort((x, y) => y[1] - x[1] || compareCodePoints(x[0], y[0]))
    .slice(0, room)
    .map(([ch]) => ch)
    .sort(compareCodePoints);
  const alphabet = [...chars, ...chars.map((ch) => `##${ch}`)];

  const learned = learnBpe(wordCounts, {
    initialSymbols: alphabet,
    splitWord: (word) => Array.from(word, (ch, i) => (i === 0 ? ch : `##${ch}`)),
    join: (a, b) => a + (b.startsWith('##') ? b.slice(2) : b),
    targetSymbols: opts.vocabSize - specials.length,
  });
  const reserved = reservedNames(opts.vocabSize - specials.length - learned.symbols.length, specials, (i) => `[unused${i}]`);
  const vocab = orderedVocab([...specials, ...learned.symbols, ...reserved]);
  const addedTokens = specials.map((content) => addedToken(vocab.get(content)!, content));
  const tokenizerJson = wordPieceJson(vocab, addedTokens);
  const roles: TokenizerRoles = { unkToken: '[UNK]', padToken: '[PAD]', tokenizerClass: 'BertTokenizer', modelMaxLength: 512, ...opts };
  const tokenizerConfig = {
    added_tokens_decoder: addedTokensDecoder(addedTokens),
    clean_up_tokenization_spaces: true,
    cls_token: '[CLS]',
    do_basic_tokenize: true,
    do_lower_case: true,
    mask_token: '[MASK]',
    model_max_length: roles.modelMaxLength,
    never_split: null,
    pad_token: roles.padToken,
    sep_token: '[SEP]',
    strip_accents: null,
    tokenize_chinese_chars: true,
    tokenizer_class: roles.tokenizerClass,
    unk_token: roles.unkToken,
    ...(roles.chatTemplate !== undefined ? { chat_template: roles.chatTemplate } : {}),
  };
  const specialTokensMap = {
    cls_token: '[CLS]',
    mask_token: '[MASK]',
    pad_token: roles.padToken,
    sep_token: '[SEP]',
    unk_token: roles.unkToken,
  };
  return { tokenizerJson, tokenizerConfig, specialTokensMap };
}

/** The parts of a tokenizers.js Tokenizer used to pre-tokenize training text (its typings do not resolve under NodeNext). */
interface TextPipeline {
  normalizer: (text: string) => string;
  pre_tokenizer: (text: string) => string[];
}

function wordPieceJson(vocab: ReadonlyMap<string, number>, addedTokens: ReadonlyArray<ReturnType<typeof addedToken>>) {
  const specialEntry = (token: string) => ({ id: token, ids: [vocab.get(token) ?? 0], tokens: [token] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: BERT_NORMALIZER_CONFIG,
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0)],
      pair: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0), sequence('B', 1), special('[SEP]', 1)],
      special_tokens: { '[CLS]': specialEntry('[CLS]'), '[SEP]': specialEntry('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab),
    },
  };
}

const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
const sequence = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });

// ---------------------------------------------------------------------------------------------
// Family presets

/**
 * The tokenizer each model family of this project starts from.
 *   gpt2:  byte-level BPE, <|endoftext|>=0 is bos = eos = unk (as GPT-2) and also pad (GPT-2 has
 *          none; fine-tuning needs one, and padded positions are masked anyway).
 *   llama: byte-level BPE with SmolLM2's specials <|endoftext|>=0 <|im_start|>=1 <|im_end|>=2,
 *          bos <|im_start|>, eos = pad <|im_end|>, unk <|endoftext|>, and the ChatML template.
 *   bert:  WordPiece, [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.
 */
export function buildFamilyTokenizer(
  family: TokenizerFamily,
  vocabSize: number,
  corpus?: string,
  opts: { modelMaxLength?: number } = {},
): BuiltTokenizer {
  const text = corpus ?? readDefaultCorpus();
  switch (family) {
    case 'gpt2': {
      const eot = '<|endoftext|>';
      return buildByteLevelBpe(text, {
        vocabSize,
        specialTokens: [eot],
        bosToken: eot,
        eosToken: eot,
        unkToken: eot,
        padToken: eot,
        tokenizerClass: 'GPT2Tokenizer',
        modelMaxLength: opts.modelMaxLength ?? 1024,
      });
    }
    case 'llama':
      return buildByteLevelBpe(text, {
        vocabSize,
        specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
        bosToken: '<|im_start|>',
        eosToken: '<|im_end|>',
        padToken: '<|im_end|>',
        unkToken: '<|endoftext|>',
        chatTemplate: CHATML_TEMPLATE,
        tokenizerClass: 'GPT2Tokenizer',
        modelMaxLength: opts.modelMaxLength ?? 2048,
      });
    case 'bert':
      return buildWordPiece(text, { vocabSize, modelMaxLength: opts.modelMaxLength ?? 512 });
    default:
      throw new InputError(`unknown tokenizer family "${String(family)}": expected gpt2, llama or bert`);
  }
}

export function readDefaultCorpus(): string {
  try {
    return readFileSync(DEFAULT_CORPUS_URL, 'utf8');
  } catch (cause) {
    throw new InputError(`cannot read the shipped corpus ${DEFAULT_CORPUS_URL.pathname}: is assets/corpus/ present in this checkout?`, { cause });
  }
}

// ---------------------------------------------------------------------------------------------
// Files

/** Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json, each atomically. */
export async function writeTokenizerFiles(dir: string, built: BuiltTokenizer): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: Array<[string, object]> = [
    ['tokenizer.json', built.tokenizerJson],
    ['tokenizer_config.json', built.tokenizerConfig],
    ['special_tokens_map.json', built.specialTokensMap],
  ];
  for (const [name, value] of files) {
    const path = join(dir, name);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, toJsonText(value) + '\n', 'utf8');
    await rename(tmp, path);
  }
}

/**
 * JSON.stringify(value, null, 2), except that `model.vocab` is listed in id order as the Rust
 * library writes it (a JS object would put integer-like keys such as "0".."9" first).
 */
export function toJsonText(value: object): string {
  const model = (value as { model?: { vocab?: unknown } }).model;
  const vocab = model?.vocab;
  if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) return JSON.stringify(value, null, 2);
  const marker = '\u0000vocab\u0000';
  const text = JSON.stringify({ ...value, model: { ...model, vocab: marker } }, null, 2);
  const entries = Object.entries(vocab as Record<string, number>).sort((x, y) => x[1] - y[1]);
  const vocabText = `{\n${entries.map(([k, id]) => `      ${JSON.stringify(k)}: ${id}`).join(',\n')}\n    }`;
  return text.replace(JSON.stringify(marker), () => vocabText);
}

// ---------------------------------------------------------------------------------------------
// Helpers

function checkVocabSize(vocabSize: number, minimum: number, what: string): void {
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new InputError(`vocabSize ${vocabSize} is too small: ${what} needs at least ${minimum} ids`);
  }
}

function uniqueSpecials(tokens: readonly string[]): string[] {
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.length === 0) throw new InputError('special tokens must be non-empty strings');
    if (seen.has(t)) throw new InputError(`special token "${t}" is listed twice`);
    seen.add(t);
  }
  return [...seen];
}

/** Cuts the text at every occurrence of a special token (longest first), dropping the tokens. */
function splitOnSpecials(text: string, specials: readonly string[]): string[] {
  if (specials.length === 0) return [text];
  const escaped = [...specials].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return text.split(new RegExp(escaped.join('|'), 'u'));
}

/** Placeholder names that fill the vocabulary when the corpus has no more pairs to merge. */
function reservedNames(count: number, taken: readonly string[], name: (i: number) => string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (!taken.includes(name(i))) out.push(name(i));
  return out;
}

function orderedVocab(tokens: readonly string[]): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const t of tokens) {
    if (vocab.has(t)) throw new Error(`internal: token ${JSON.stringify(t)} would get two ids`);
    vocab.set(t, vocab.size);
  }
  return vocab;
}

function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function addedTokensDecoder(added: ReadonlyArray<ReturnType<typeof addedToken>>): Record<string, object> {
  return Object.fromEntries(
    added.map(({ id, content, lstrip, normalized, rstrip, single_word, special }) => [
      String(id),
      { content, lstrip, normalized, rstrip, single_word, special },
    ]),
  );
}

function roleFields(roles: TokenizerRoles): Record<string, string> {
  const out: Record<string, string> = {};
  if (roles.bosToken !== undefined) out.bos_token = roles.bosToken;
  if (roles.eosToken !== undefined) out.eos_token = roles.eosToken;
  if (roles.padToken !== undefined) out.pad_token = roles.padToken;
  if (roles.unkToken !== undefined) out.unk_token = roles.unkToken;
  return out;
}

function additionalSpecials(specials: readonly string[], roles: TokenizerRoles): string[] {
  // As SmolLM2 does: every special except the unk fallback, even when it is also bos/eos, so chat
  // markers like <|im_start|> are always kept whole by tools that read only this list.
  return specials.filter((s) => s !== roles.unkToken);
}

/** special_tokens_map.json in the hub's object form ({"content": ..., "lstrip": ...}). */
function specialTokensMap(roles: TokenizerRoles, specials: readonly string[]): object {
  const entry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  const out: Record<string, unknown> = {};
  const extra = additionalSpecials(specials, roles);
  if (extra.length > 0) out.additional_special_tokens = extra;
  for (const [key, value] of Object.entries(roleFields(roles))) out[key] = entry(value);
  return out;
}

function compareCodePoints(a: string, b: string): number {
  return a.codePointAt(0)! - b.codePointAt(0)!;
}
