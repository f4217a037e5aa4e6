/**
 * The one truncation rule, shared by data preparation (src/data/examples.ts), eval (which runs on
 * those prepared examples), classify and serve (src/model/classify.ts). It is Hugging Face
 * tokenizers' rule: `truncation_side` says which end of the text is cut, and the special tokens the
 * tokenizer's post-processor adds around the text are never cut, because truncation happens on the
 * text's tokens before they are added.
 *
 *   ids = [head specials] [text tokens t0 .. t(n-1)] [tail specials],  maxLength = L, k = L - head - tail
 *   right: [head] t0 .. t(k-1)      [tail]     (keep the beginning)
 *   left:  [head] t(n-k) .. t(n-1)  [tail]     (keep the end)
 *
 * Defaults, per family: `truncation_side` from tokenizer_config.json when it sets one (HF reads the
 * same key), else 'right' for every family, as transformers' GPT-2, Llama and BERT tokenizers do.
 * What differs per family is the post-processor, so the rule keeps:
 *   bert   [CLS] ... [SEP]   both kept: the model was trained with a closing [SEP]
 *   gpt2   nothing added     a plain cut; the last position is the last kept text token
 *   llama  <s> ...           hub Llama tokenizers (TemplateProcessing) add <s> in front: kept; the
 *                            byte-level ones tokenizer-build.ts writes add nothing, as SmolLM2
 * Causal-LM examples keep the post-processor's head (BOS) and tail; the EOS that data preparation
 * appends is its own, part of the text's tokens, and is cut like them (src/data/examples.ts).
 * Generation does not truncate: cutting either end of a prompt changes what is asked, so a prompt
 * that leaves no room for a new token is an error (src/model/generate.ts promptTooLong).
 */
import { InputError } from '../errors.ts';

export type TruncationSide = 'right' | 'left';
export const TRUNCATION_SIDES: readonly TruncationSide[] = ['right', 'left'];
/** For every family (see the header); a tokenizer_config.json `truncation_side` overrides it. */
export const DEFAULT_TRUNCATION_SIDE: TruncationSide = 'right';

/**
 * What truncation needs of a tokenizer; src/model/tokenizer.ts `Tokenizer` has it (named here
 * structurally because the tokenizer reads its side from this module).
 */
export interface TruncatingTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  readonly truncationSide: TruncationSide;
  readonly modelMaxLength?: number;
}

/** Where the post-processor's special tokens sit around the text: counts at each end. */
export interface SpecialsAround {
  head: number;
  tail: number;
}

/**
 * `ids` cut to at most `maxLength` on `side`, keeping `around.head` leading and `around.tail`
 * trailing tokens untouched. Returns `ids` itself when it already fits.
 */
export function truncateIds<T>(ids: readonly T[], maxLength: number, side: TruncationSide, around: SpecialsAround = { head: 0, tail: 0 }): T[] {
  if (ids.length <= maxLength) return ids as T[];
  const keep = maxLength - around.head - around.tail;
  if (keep < 0) throw new InputError(`max length ${maxLength} leaves no room for the ${around.head + around.tail} special tokens the tokenizer adds`);
  const head = ids.slice(0, around.head);
  const tail = ids.slice(ids.length - around.tail);
  const text = ids.slice(around.head, ids.length - around.tail);
  return [...head, ...(side === 'right' ? text.slice(0, keep) : text.slice(text.length - keep)), ...tail];
}

/**
 * Token ids of `text` with the post-processor's special tokens, truncated to `maxLength` by the rule
 * above: what every classification path feeds the model.
 */
export function encodeTruncated(tok: TruncatingTokenizer, text: string, maxLength: number): number[] {
  const full = tok.encode(text);
  if (full.length <= maxLength) return full;
  return truncateIds(full, maxLength, tok.truncationSide, specialsAround(full, tok.encode(text, { addSpecialTokens: false })));
}

/** Finds the plain encoding inside the one with specials: what is before it is the head, after it the tail. */
export function specialsAround(full: readonly number[], plain: readonly number[]): SpecialsAround {
  const extra = full.length - plain.length;
  for (let head = 0; head <= extra; head++) {
    if (plain.every((id, i) => full[head + i] === id)) return { head, tail: extra - head };
  }
  // A post-processor that rewrites the text's tokens themselves: nothing is protected.
  return { head: 0, tail: 0 };
}

/**
 * Tokens a text may have at inference (classify, serve): the model's positions, or fewer when the
 * tokenizer's model_max_length says so. Data preparation uses the job's data.max_seq_len instead;
 * the two agree when a run's max_seq_len is the model's length.
 */
export function inferenceMaxLength(maxPositions: number, tok: TruncatingTokenizer): number {
  return Math.min(maxPositions, tok.modelMaxLength ?? Infinity);
}
