/**
 * Small tokenizer.json files laid out as each family's hub tokenizer is, written by hand so tests can
 * work out the ids Hugging Face's tokenizer(text) gives by reading the vocab, the merges and the
 * post-processor (the expected ids are in the tests, not computed by ringtune):
 *   llama2   SentencePiece-style BPE (Prepend/Replace "▁" normalizer, byte fallback <0xNN> = 3 + byte),
 *            TemplateProcessing "<s> $A" as meta-llama/Llama-2-7b-hf ships it
 *   llama3   byte-level BPE, post_processor Sequence [ByteLevel, TemplateProcessing "<|begin_of_text|> $A"]
 *   gpt2     byte-level BPE, ByteLevel post-processor: nothing added
 *   roberta  the gpt2 vocab + <s>, </s>, RobertaProcessing "<s> $A </s>"
 *   bert     WordPiece, BertProcessing "[CLS] $A [SEP]" (the shape of older hub BERT files)
 */
const added = (entries: Array<[number, string]>) =>
  entries.map(([id, content]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));

const template = (bos: string, bosId: number) => ({
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
});

/** <unk>=0 <s>=1 </s>=2, bytes <0x00>..<0xFF> = 3..258, then the pieces below (ids 259..270). */
export function llama2Tokenizer(): { tokenizerJson: object; tokenizerConfig: object } {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  Object.assign(vocab, { '▁t': 259, he: 260, '▁the': 261, '▁c': 262, at: 263, '▁cat': 264, '▁': 265, t: 266, h: 267, e: 268, c: 269, a: 270 });
  return {
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: added([[0, '<unk>'], [1, '<s>'], [2, '</s>']]),
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      post_processor: template('<s>', 1),
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: {
        type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab,
        merges: ['▁ t', 'h e', '▁t he', '▁ c', 'a t', '▁c at'],
      },
    },
    tokenizerConfig: {
      add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null,
      clean_up_tokenization_spaces: false, model_max_length: 4096, tokenizer_class: 'LlamaTokenizer',
      // Llama 2's shape: the template writes the BOS itself.
      chat_template: "{{ bos_token }}{% for m in messages %}{{ '[' + m['role'] + '] ' + m['content'] + ' ' }}{% endfor %}{% if add_generation_prompt %}{{ '[assistant]' }}{% endif %}",
    },
  };
}

/** Byte-level pieces: h=0 i=1 Ġ=2 t=3 e=4 r=5 hi=6 Ġt=7 he=8 Ġthe=9 re=10 Ġthere=11 <|endoftext|>=12. */
const BYTE_LEVEL_VOCAB = { h: 0, i: 1, 'Ġ': 2, t: 3, e: 4, r: 5, hi: 6, 'Ġt': 7, he: 8, 'Ġthe': 9, re: 10, 'Ġthere': 11, '<|endoftext|>': 12 };
const BYTE_LEVEL_MERGES = ['h i', 'Ġ t', 'h e', 'Ġt he', 'r e', 'Ġthe re'];

function byteLevel(extra: Record<string, number>, postProcessor: object, config: object): { tokenizerJson: object; tokenizerConfig: object } {
  const vocab = { ...BYTE_LEVEL_VOCAB, ...extra };
  return {
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: added(Object.entries(vocab).filter(([t]) => t.startsWith('<')).map(([t, id]) => [id, t])),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: postProcessor,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: BYTE_LEVEL_MERGES,
      },
    },
    tokenizerConfig: { clean_up_tokenization_spaces: false, ...config },
  };
}

const BYTE_LEVEL_POST = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };

export const gpt2Tokenizer = () =>
  byteLevel({}, BYTE_LEVEL_POST, { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', tokenizer_class: 'GPT2Tokenizer' });

export const llama3Tokenizer = () =>
  byteLevel({ '<|begin_of_text|>': 13, '<|end_of_text|>': 14 }, { type: 'Sequence', processors: [BYTE_LEVEL_POST, template('<|begin_of_text|>', 13)] }, {
    bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', tokenizer_class: 'PreTrainedTokenizerFast',
  });

export const robertaTokenizer = () =>
  byteLevel({ '<s>': 13, '</s>': 14 }, { type: 'RobertaProcessing', sep: ['</s>', 14], cls: ['<s>', 13], trim_offsets: true, add_prefix_space: false }, {
    bos_token: '<s>', eos_token: '</s>', cls_token: '<s>', sep_token: '</s>', tokenizer_class: 'RobertaTokenizer',
  });

/** [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 the=5 cat=6 sat=7 un=8 ##aff=9 ##able=10 .=11 */
export function bertTokenizer(): { tokenizerJson: object; tokenizerConfig: object } {
  const vocab = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3, '[MASK]': 4, the: 5, cat: 6, sat: 7, un: 8, '##aff': 9, '##able': 10, '.': 11 };
  return {
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: added([[0, '[PAD]'], [1, '[UNK]'], [2, '[CLS]'], [3, '[SEP]'], [4, '[MASK]']]),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    },
    tokenizerConfig: { do_lower_case: true, unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]', tokenizer_class: 'BertTokenizer' },
  };
}
