/**
 * BERT-style WordPiece tokenizer.json built from text (see tokenizer-build.ts for the id layout).
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { learnBpe } from './bpe-train.ts';
import { addedToken, addedTokensDecoder, checkVocabSize, orderedVocab, reservedNames, type BuiltTokenizer, type TokenizerRoles } from './tokenizer-json.ts';

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

function compareCodePoints(a: string, b: string): number {
  return a.codePointAt(0)! - b.codePointAt(0)!;
}
