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
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.ts';
import { learnBpe } from './bpe-train.ts';
import { addedToken, addedTokensDecoder, checkVocabSize, orderedVocab, reservedNames, type BuiltTokenizer, type TokenizerRoles } from './tokenizer-json.ts';
import { buildWordPiece } from './wordpiece-build.ts';

export { buildWordPiece, BERT_SPECIALS } from './wordpiece-build.ts';
export { writeTokenizerFiles, toJsonText, type BuiltTokenizer, type TokenizerRoles } from './tokenizer-json.ts';

export type TokenizerFamily = 'gpt2' | 'llama' | 'bert';

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
// Helpers

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
