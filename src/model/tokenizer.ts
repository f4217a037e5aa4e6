/**
 * Loading and using a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json)
 * through tokenizers.js (@huggingface/tokenizers), and rendering chat templates through
 * @huggingface/jinja, the same Jinja subset transformers.js uses.
 *
 * Files from the hub and files written by tokenizer-build.ts load the same way. tokenizer_config
 * values that are objects ({"content": "<|im_end|>", "lstrip": false, ...}), as many hub files
 * have, are read through their `content`.
 *
 * Special tokens around a text come from tokenizer.json's `post_processor`, as Hugging Face's
 * `tokenizer(text)` adds them (add_special_tokens=True, its default):
 *   TemplateProcessing  its `single` template: Llama 1/2 `<s> $A`, Llama 3 `<|begin_of_text|> $A`
 *   BertProcessing      [CLS] $A [SEP]
 *   RobertaProcessing   <s> $A </s>
 *   ByteLevel / none    nothing (GPT-2, SmolLM2, the byte-level tokenizers tokenizer-build.ts writes)
 *   Sequence            the above in turn (Llama 3 is [ByteLevel, TemplateProcessing])
 * except that transformers' Llama / CodeLlama / Gemma tokenizer classes rebuild it from
 * tokenizer_config.json's add_bos_token / add_eos_token (llamaPostProcessor below).
 * For one text these add the same tokens whatever the text, so they are found once at load
 * (`postProcessorSpecials`) and `encodeParts` returns them apart from the text's own tokens: data
 * preparation masks them out of the loss and truncation keeps them (src/model/truncation.ts).
 *
 * Engines: tokenizers.js does everything by default; for a byte-level BPE tokenizer.json that uses only
 * what byte-level-bpe.ts implements (it checks), that encoder gives the same ids several times faster,
 * and `encode` uses it (engine 'auto', the default). Engine 'library' keeps tokenizers.js throughout
 * (bench:data compares the two; tests/model/tokenizer-engine.test.ts proves them equal).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { InputError } from '../errors.ts';
import { DEFAULT_TRUNCATION_SIDE, specialsAround, TRUNCATION_SIDES, type TruncationSide } from './truncation.ts';
import { compileByteLevelBpe, type ByteLevelBpe } from './byte-level-bpe.ts';

/** Which code encodes: 'auto' picks the fast byte-level BPE encoder when it applies, 'library' never does. */
export type TokenizerEngine = 'auto' | 'library';
export const TOKENIZER_ENGINES: readonly TokenizerEngine[] = ['auto', 'library'];

export interface TokenizerOptions {
  /** Default 'auto'. */
  engine?: TokenizerEngine;
}

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * The part of tokenizers.js's Tokenizer used here. Its bundled typings use extensionless relative
 * paths that do not resolve under NodeNext, so the import is untyped; this pins what we rely on.
 */
interface HfTokenizerApi {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}

/**
 * One text's ids split where the post-processor's special tokens meet the text's own tokens:
 * `[...head, ...body, ...tail]` is what the model is fed.
 */
export interface EncodedParts {
  /** Specials before the text: [BOS] for Llama, [CLS] for BERT, [] for GPT-2 or without specials. */
  head: number[];
  /** The text's own tokens (add_special_tokens=False). */
  body: number[];
  /** Specials after the text: [SEP] for BERT, </s> for RoBERTa, usually [] for causal LMs. */
  tail: number[];
}

/** The ids of `parts` in order. */
export function joinParts(parts: EncodedParts): number[] {
  return [...parts.head, ...parts.body, ...parts.tail];
}

type SpecialRole = 'bos' | 'eos' | 'pad' | 'unk' | 'cls' | 'sep';

/**
 * Conventional names tried, among the tokenizer's special added tokens, when tokenizer_config.json
 * does not name a role (e.g. fromJson without a config).
 */
const CONVENTIONAL_SPECIALS: Record<SpecialRole, readonly string[]> = {
  bos: ['<s>', '<|begin_of_text|>'],
  eos: ['</s>', '<|end_of_text|>', '<|endoftext|>'],
  pad: ['[PAD]', '<pad>'],
  unk: ['[UNK]', '<unk>'],
  cls: ['[CLS]'],
  sep: ['[SEP]'],
};

export class Tokenizer {
  /** Number of embedding rows the ids need: highest id (vocab or added token) + 1. */
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly unkTokenId?: number;
  readonly clsTokenId?: number;
  readonly sepTokenId?: number;
  readonly chatTemplate?: string;
  /** Which end of a text truncation cuts (src/model/truncation.ts): tokenizer_config.json `truncation_side`, else the default. */
  readonly truncationSide: TruncationSide;
  /** tokenizer_config.json `model_max_length` when it is a real limit (HF writes ~1e30 for "none"). */
  readonly modelMaxLength?: number;
  /** What the post-processor adds around one text (see the header); both empty for byte-level tokenizers. */
  readonly postProcessorSpecials: { readonly head: readonly number[]; readonly tail: readonly number[] };
  /** The engine that encodes: 'byte-level-bpe' (byte-level-bpe.ts) or 'library' (tokenizers.js). */
  readonly engine: 'byte-level-bpe' | 'library';
  /** With engine 'auto', why the library encodes (what byte-level-bpe.ts does not implement). */
  readonly engineFallback?: string;
  /** The engine asked for, so worker threads load the tokenizer the same way. */
  readonly engineOption: TokenizerEngine;

  private readonly hf: HfTokenizerApi;
  private readonly fast?: ByteLevelBpe;
  /** The post-processor is one whose specials are the same whatever the text (see wrapsText). */
  private readonly specialsFixed: boolean;
  private readonly config: Record<string, unknown>;
  private readonly cleanUpSpaces: boolean;
  private compiledTemplate?: Template;

  /** Reads `dir`/tokenizer.json and, when present, `dir`/tokenizer_config.json. */
  static async fromDir(dir: string, opts: TokenizerOptions = {}): Promise<Tokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    const configPath = join(dir, 'tokenizer_config.json');
    const tokenizerJson = await readJsonObject(tokenizerPath, true);
    const tokenizerConfig = await readJsonObject(configPath, false);
    return Tokenizer.build(tokenizerJson!, tokenizerConfig ?? {}, tokenizerPath, opts);
  }

  static fromJson(tokenizerJson: object, tokenizerConfig?: object, opts: TokenizerOptions = {}): Tokenizer {
    return Tokenizer.build(tokenizerJson, tokenizerConfig ?? {}, 'tokenizer.json', opts);
  }

  private static build(tokenizerJson: object, tokenizerConfig: object, source: string, opts: TokenizerOptions): Tokenizer {
    const engine = opts.engine ?? 'auto';
    if (!TOKENIZER_ENGINES.includes(engine)) throw new InputError(`unknown tokenizer engine "${String(engine)}": expected ${TOKENIZER_ENGINES.join(' or ')}`);
    const json = tokenizerJson as Record<string, unknown>;
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new InputError(`${source}: expected a JSON object`);
    }
    const model = json.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new InputError(`${source}: no "model" with a "vocab"; is this a Hugging Face tokenizer.json (tokenizers >= 0.10)?`);
    }
    const config = normalizeConfig(tokenizerConfig as Record<string, unknown>);
    // tokenizers.js requires these keys to be present (null is fine); older files omit some.
    const complete: Record<string, unknown> = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json };
    const rebuilt = llamaPostProcessor(config, source);
    if (rebuilt) complete.post_processor = rebuilt;
    let hf: HfTokenizerApi;
    try {
      hf = new HfTokenizer(complete, config) as HfTokenizerApi;
    } catch (cause) {
      throw new InputError(`${source}: tokenizers.js cannot load it (${(cause as Error).message})`, { cause });
    }
    const fast = engine === 'auto' ? compileByteLevelBpe(complete, config) : { unsupported: 'engine "library" asked for' };
    return new Tokenizer(hf, config, complete.added_tokens as Array<{ content: string; special?: boolean }>, fast, engine, wrapsText(complete.post_processor));
  }

  private constructor(
    hf: HfTokenizerApi, config: Record<string, unknown>, addedTokens: Array<{ content: string; special?: boolean }>,
    fast: ReturnType<typeof compileByteLevelBpe>, engineOption: TokenizerEngine, specialsFixed: boolean,
  ) {
    this.specialsFixed = specialsFixed;
    this.hf = hf;
    this.config = config;
    this.engineOption = engineOption;
    if ('ok' in fast) this.fast = fast.ok;
    else if (engineOption === 'auto') this.engineFallback = fast.unsupported;
    this.engine = this.fast ? 'byte-level-bpe' : 'library';
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    // Modern transformers defaults this to false; true would make byte-level decoding lossy.
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;

    const specials = new Set(addedTokens.filter((t) => t.special).map((t) => t.content));
    const roleId = (role: SpecialRole): number | undefined => {
      const named = config[`${role}_token`];
      if (typeof named === 'string') return hf.token_to_id(named);
      if (named === null) return undefined; // explicitly none
      const found = CONVENTIONAL_SPECIALS[role].find((t) => specials.has(t));
      return found === undefined ? undefined : hf.token_to_id(found);
    };
    this.bosTokenId = roleId('bos');
    this.eosTokenId = roleId('eos');
    this.padTokenId = roleId('pad');
    this.unkTokenId = roleId('unk');
    this.clsTokenId = roleId('cls');
    this.sepTokenId = roleId('sep');
    this.chatTemplate = pickChatTemplate(config.chat_template);
    const side = config.truncation_side;
    if (side !== undefined && !TRUNCATION_SIDES.includes(side as TruncationSide)) {
      throw new InputError(`tokenizer_config.json: truncation_side must be "right" or "left", got ${JSON.stringify(side)}`);
    }
    this.truncationSide = (side as TruncationSide | undefined) ?? DEFAULT_TRUNCATION_SIDE;
    const maxLen = config.model_max_length;
    if (typeof maxLen === 'number' && Number.isInteger(maxLen) && maxLen > 0 && maxLen < 2 ** 31) this.modelMaxLength = maxLen;
    this.postProcessorSpecials = findPostProcessorSpecials(hf);
  }

  /**
   * Token ids of `text` exactly as HF's tokenizer(text, add_special_tokens=...)["input_ids"]: with
   * addSpecialTokens (default) the post-processor adds e.g. <s> or [CLS]/[SEP].
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    if (this.fast && (!add || this.specialsFixed)) {
      const body = this.fast.encode(text);
      return add ? [...this.postProcessorSpecials.head, ...body, ...this.postProcessorSpecials.tail] : body;
    }
    return this.hf.encode(text, { add_special_tokens: add }).ids;
  }

  /**
   * `text` as the model is fed it, in parts (see EncodedParts). With addSpecialTokens (default) the
   * post-processor's specials are added, except where the text already writes them itself: a prompt
   * that begins with "<s>" (a chat template's output pasted into a completion, a record saved with its
   * BOS) gets one BOS, not the two HF's tokenizer(text) would give. Without, head and tail are empty.
   */
  encodeParts(text: string, opts: { addSpecialTokens?: boolean } = {}): EncodedParts {
    const body = this.encode(text, { addSpecialTokens: false });
    if (!(opts.addSpecialTokens ?? true)) return { head: [], body, tail: [] };
    const { head, tail } = this.postProcessorSpecials;
    const startsWithHead = head.length > 0 && body.length >= head.length && head.every((id, i) => body[i] === id);
    const endsWithTail = tail.length > 0 && body.length >= tail.length && tail.every((id, i) => body[body.length - tail.length + i] === id);
    return { head: startsWithHead ? [] : [...head], body, tail: endsWithTail ? [] : [...tail] };
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InputError(`cannot decode token id ${id}: ids must be integers in 0..${this.vocabSize - 1}`);
      }
    }
    return this.hf.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /**
   * Renders the chat template as transformers' apply_chat_template(tokenize=False) does: the
   * template sees `messages`, `add_generation_prompt` and the special tokens by name.
   */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === undefined) {
      throw new InputError('this tokenizer has no chat_template in tokenizer_config.json; use a chat model\'s tokenizer or format the prompt yourself');
    }
    this.compiledTemplate ??= new Template(this.chatTemplate);
    const specialTokens: Record<string, string> = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'cls_token', 'sep_token', 'mask_token']) {
      const value = this.config[key];
      if (typeof value === 'string') specialTokens[key] = value;
    }
    try {
      return this.compiledTemplate.render({
        ...specialTokens,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (cause) {
      throw new InputError(`chat_template failed to render: ${(cause as Error).message}`, { cause });
    }
  }
}

/** tokenizer_class values whose transformers class rebuilds the post-processor from add_bos_token / add_eos_token. */
const REBUILDS_POST_PROCESSOR = new Set(['LlamaTokenizer', 'LlamaTokenizerFast', 'CodeLlamaTokenizer', 'CodeLlamaTokenizerFast', 'GemmaTokenizer', 'GemmaTokenizerFast']);

/**
 * transformers' LlamaTokenizerFast.update_post_processor (also CodeLlama's and Gemma's): the
 * tokenizer.json post-processor is replaced by TemplateProcessing "[bos] $A [eos]" with the BOS when
 * add_bos_token (default true) and the EOS when add_eos_token (default false), so a checkpoint whose
 * config sets add_eos_token: true gets its EOS as in Python. Undefined for every other class.
 */
function llamaPostProcessor(config: Record<string, unknown>, source: string): object | undefined {
  if (!REBUILDS_POST_PROCESSOR.has(String(config.tokenizer_class))) return undefined;
  const item = (role: 'bos' | 'eos', flag: string, fallback: boolean): string | undefined => {
    const on = config[flag] ?? fallback;
    if (on !== true) return undefined;
    const token = config[`${role}_token`];
    if (typeof token !== 'string') throw new InputError(`${source}: tokenizer_config.json sets ${flag} but no ${role}_token`);
    return token;
  };
  const bos = item('bos', 'add_bos_token', true);
  const eos = item('eos', 'add_eos_token', false);
  const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const around = (id: 'A' | 'B', typeId: number) => [...(bos ? [special(bos, typeId)] : []), seq(id, typeId), ...(eos ? [special(eos, typeId)] : [])];
  const tokens = [bos, eos].filter((t): t is string => t !== undefined);
  return {
    type: 'TemplateProcessing',
    single: around('A', 0),
    pair: [...around('A', 0), ...around('B', 1)],
    // tokenizers.js maps a template's tokens to ids by name (its added tokens), so `ids` is not read.
    special_tokens: Object.fromEntries(tokens.map((t) => [t, { id: t, ids: [], tokens: [t] }])),
  };
}

/**
 * Whether tokenizers.js's post-processor, for one text, only puts the same tokens before and after
 * it (then encode(text) = head + encode(text, no specials) + tail): none, ByteLevel (adds nothing),
 * BertProcessing / RobertaProcessing ([cls] $A [sep]), TemplateProcessing whose `single` holds $A
 * once, or a Sequence of these.
 */
function wrapsText(pp: unknown): boolean {
  if (pp === null || pp === undefined) return true;
  const p = pp as { type?: unknown; single?: unknown; processors?: unknown };
  switch (p.type) {
    case 'ByteLevel':
    case 'BertProcessing':
    case 'RobertaProcessing':
      return true;
    case 'TemplateProcessing':
      return Array.isArray(p.single) && p.single.filter((item) => typeof item === 'object' && item !== null && 'Sequence' in item).length === 1
        && p.single.every((item) => typeof item === 'object' && item !== null && ('Sequence' in item ? (item as { Sequence: { id?: unknown } }).Sequence.id === 'A' : 'SpecialToken' in item));
    case 'Sequence':
      return Array.isArray(p.processors) && p.processors.every(wrapsText);
    default:
      return false;
  }
}

/**
 * The post-processor's specials for one text, found by encoding short probe texts with and without
 * them: what comes before the plain ids is the head, what comes after the tail. The probes are
 * plain words any vocabulary encodes (to themselves or to its unknown token).
 */
function findPostProcessorSpecials(hf: HfTokenizerApi): { head: number[]; tail: number[] } {
  const unsupported = () =>
    new InputError('tokenizer.json: its post_processor changes the text\'s own tokens, not only adds special tokens around them; ringtune supports TemplateProcessing, BertProcessing, RobertaProcessing and ByteLevel post-processors');
  let encodesText = false;
  for (const probe of ['a', 'the', 'x', '0', '.']) {
    const plain = hf.encode(probe, { add_special_tokens: false }).ids;
    const full = hf.encode(probe, { add_special_tokens: true }).ids;
    encodesText ||= full.length > 0;
    if (plain.length === 0 || plain.some((id) => !Number.isInteger(id))) continue;
    const around = specialsAround(full, plain);
    const rebuilt = [...full.slice(0, around.head), ...plain, ...full.slice(full.length - around.tail)];
    if (rebuilt.length !== full.length || rebuilt.some((id, i) => id !== full[i])) throw unsupported();
    return { head: full.slice(0, around.head), tail: full.slice(full.length - around.tail) };
  }
  // Text that encodes to specials only: a template without the text's sequence ($A).
  if (encodesText) throw unsupported();
  // No probe encodes to anything (a vocabulary without these characters and no unknown token).
  return { head: [], tail: [] };
}

/** Parses a JSON object file; a missing optional file gives undefined. Errors name the file. */
async function readJsonObject(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new InputError(`cannot read ${path}: ${(cause as Error).message}; a tokenizer directory needs tokenizer.json (as saved by save_pretrained)`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new InputError(`${path} is not valid JSON (${(cause as Error).message})`, { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(`${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Replaces {"content": ...} special-token objects by their content, including inside lists. */
function normalizeConfig(config: Record<string, unknown>): Record<string, unknown> {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InputError('tokenizer_config.json must hold a JSON object');
  }
  const content = (v: unknown): unknown =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { content?: unknown }).content === 'string'
      ? (v as { content: string }).content
      : v;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (key.endsWith('_token')) out[key] = content(value);
    else if (key === 'additional_special_tokens' && Array.isArray(value)) out[key] = value.map(content);
    else out[key] = value;
  }
  return out;
}

/** chat_template is a string, or on some hub models a list of {name, template}; take "default". */
function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: unknown; template?: unknown }>;
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    return typeof chosen?.template === 'string' ? chosen.template : undefined;
  }
  return undefined;
}
