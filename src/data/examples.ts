/**
 * Records -> token ids with loss masks, per data format. Loss positions:
 *   text               every token (causal LM on the whole text, then EOS)
 *   prompt-completion  completion tokens and EOS only
 *   messages           assistant turns only (content + the template's end-of-turn), via the chat template
 *   label              one label id per example (classification)
 * A causal-LM example of n tokens trains n-1 predictions: input tokens[0..n-2], targets tokens[1..n-1],
 * target t counted when lossMask[t] = 1.
 *
 * Special tokens (data.add_special_tokens, default true) are the tokenizer's post-processor's, as
 * Hugging Face's tokenizer(text) adds them (src/model/tokenizer.ts): a Llama tokenizer's <s>, none
 * for GPT-2 or the byte-level tokenizers this project builds. Per format, as TRL's SFTTrainer builds
 * its examples (tokenizer(prompt + completion + eos_token), completion_mask 0 over tokenizer(prompt)):
 *   text               [head] text EOS [tail]                loss 0 on the head, 1 on the rest
 *   prompt-completion  [head] prompt completion EOS [tail]   loss 0 on head and prompt, 1 on the rest
 *                      (prompt + completion encoded together, as TRL: see completionParts)
 *   messages           the chat template writes its own BOS; nothing is added (apply_chat_template
 *                      with tokenize=True adds no specials either)
 *   label              [CLS] text [SEP] always (encodeTruncated): the classifier pools on them
 * The head (BOS) is context, never a target: in a packed row it follows the previous document's EOS,
 * and predicting it would teach nothing. The EOS is appended once: not when the post-processor's tail
 * already ends a text with it.
 * Over-long examples are cut by the one truncation rule (src/model/truncation.ts), which classify and
 * serve also use, so eval scores the same inputs the served model sees.
 */
import type { DataFormat } from '../config/compile.ts';
import type { EncodedParts, Tokenizer } from '../model/tokenizer.ts';
import { encodeTruncated, truncateIds, type SpecialsAround } from '../model/truncation.ts';
import type { BadRecord, RawRecord } from './records.ts';

export interface LmExample {
  tokens: number[];
  lossMask: number[];
  /** Source line(s), for error messages and the exactly-once tests. */
  source: string;
}

export interface ClsExample {
  tokens: number[];
  label: number;
  source: string;
}

export interface FieldNames { text: string; prompt: string; completion: string; messages: string; label: string }

type Result<T> = { ok: T } | { bad: Omit<BadRecord, 'file' | 'line'> };

function str(value: Record<string, unknown>, field: string, allowEmpty = false): Result<string> {
  const v = value[field];
  if (v === undefined) return { bad: { field, reason: 'missing' } };
  if (typeof v !== 'string') return { bad: { field, reason: `must be a string, got ${JSON.stringify(v)?.slice(0, 40)}` } };
  if (!allowEmpty && v.trim() === '') return { bad: { field, reason: 'is empty' } };
  return { ok: v };
}

export class ExampleBuilder {
  /** Examples cut to max_seq_len so far: longer than it before the cut. */
  truncated = 0;

  constructor(
    private readonly tok: Tokenizer,
    private readonly format: DataFormat,
    private readonly fields: FieldNames,
    private readonly maxSeqLen: number,
    /** data.add_special_tokens: the post-processor's specials around text and prompt-completion records. */
    private readonly addSpecialTokens = true,
  ) {}

  private parts(text: string): EncodedParts {
    return this.tok.encodeParts(text, { addSpecialTokens: this.addSpecialTokens });
  }

  /** [EOS], unless there is none or the post-processor's tail already ends the text with it. */
  private eos(tail: readonly number[]): number[] {
    return this.tok.eosTokenId === undefined || tail.includes(this.tok.eosTokenId) ? [] : [this.tok.eosTokenId];
  }

  /** Tokens and mask cut alike, keeping the post-processor's specials (the EOS is ours: cut like the text). */
  private truncate(ex: LmExample, around: SpecialsAround): LmExample {
    if (ex.tokens.length <= this.maxSeqLen) return ex;
    this.truncated++;
    const side = this.tok.truncationSide;
    return { ...ex, tokens: truncateIds(ex.tokens, this.maxSeqLen, side, around), lossMask: truncateIds(ex.lossMask, this.maxSeqLen, side, around) };
  }

  lm(rec: RawRecord, source: string): Result<LmExample> {
    const v = rec.value;
    if (this.format === 'text') {
      const text = str(v, this.fields.text);
      if ('bad' in text) return text;
      const { head, body, tail } = this.parts(text.ok);
      const targets = [...body, ...this.eos(tail), ...tail];
      const ex = { tokens: [...head, ...targets], lossMask: [...head.map(() => 0), ...targets.map(() => 1)], source };
      return { ok: this.truncate(ex, { head: head.length, tail: tail.length }) };
    }
    if (this.format === 'prompt-completion') {
      const prompt = str(v, this.fields.prompt, true);
      if ('bad' in prompt) return prompt;
      const completion = str(v, this.fields.completion);
      if ('bad' in completion) return completion;
      const { head, body: p } = this.parts(prompt.ok);
      const { body: c, tail } = this.completionParts(prompt.ok, p, completion.ok);
      const context = [...head, ...p];
      const targets = [...c, ...this.eos(tail), ...tail];
      const ex = { tokens: [...context, ...targets], lossMask: [...context.map(() => 0), ...targets.map(() => 1)], source };
      return { ok: this.truncate(ex, { head: head.length, tail: tail.length }) };
    }
    return this.chat(v, source);
  }

  /**
   * The completion's tokens as TRL cuts them from tokenizer(prompt + completion): what follows the
   * prompt's own tokens. Where the two texts merge across the boundary (the joint ids do not start
   * with the prompt's; TRL then warns and masks by count), the completion is encoded alone so the loss
   * is on exactly its tokens. SentencePiece tokenizers need the joint encoding: alone, " cat" would
   * get a second "▁" prepended.
   */
  private completionParts(prompt: string, promptIds: readonly number[], completion: string): { body: number[]; tail: number[] } {
    const joint = this.parts(prompt + completion);
    if (promptIds.every((id, i) => joint.body[i] === id)) return { body: joint.body.slice(promptIds.length), tail: joint.tail };
    const alone = this.parts(completion);
    return { body: alone.body, tail: alone.tail };
  }

  /**
   * Renders growing prefixes of the conversation and tokenises the differences, so each turn's tokens
   * are known: for an assistant turn the generation prompt (role header) is context, the rest is target.
   */
  private chat(v: Record<string, unknown>, source: string): Result<LmExample> {
    const field = this.fields.messages;
    const msgs = v[field];
    if (!Array.isArray(msgs) || msgs.length === 0) return { bad: { field, reason: 'must be a non-empty array of {role, content}' } };
    for (const [i, m] of msgs.entries()) {
      if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
        return { bad: { field: `${field}[${i}]`, reason: 'must be an object with string "role" and "content"' } };
      }
    }
    if (!msgs.some((m) => m.role === 'assistant')) return { bad: { field, reason: 'has no assistant turn to learn from' } };
    const render = (n: number, gen: boolean) => (n === 0 && !gen ? '' : this.tok.applyChatTemplate(msgs.slice(0, n), { addGenerationPrompt: gen }));
    const tokens: number[] = [];
    const lossMask: number[] = [];
    const push = (text: string, loss: number) => {
      const ids = this.tok.encode(text, { addSpecialTokens: false });
      tokens.push(...ids);
      lossMask.push(...ids.map(() => loss));
    };
    let prev = '';
    for (let i = 0; i < msgs.length; i++) {
      const full = render(i + 1, false);
      if (!full.startsWith(prev)) return { bad: { field, reason: 'the chat template does not render conversations prefix by prefix; cannot find turn boundaries' } };
      if (msgs[i].role === 'assistant') {
        const header = render(i, true);
        if (!header.startsWith(prev) || !full.startsWith(header)) return { bad: { field, reason: 'the chat template\'s generation prompt does not prefix the assistant turn' } };
        push(header.slice(prev.length), 0);
        push(full.slice(header.length), 1);
      } else {
        push(full.slice(prev.length), 0);
      }
      prev = full;
    }
    return { ok: this.truncate({ tokens, lossMask, source }, { head: 0, tail: 0 }) };
  }

  cls(rec: RawRecord, source: string, label2id: ReadonlyMap<string, number>): Result<ClsExample> {
    const text = str(rec.value, this.fields.text);
    if ('bad' in text) return text;
    const raw = rec.value[this.fields.label];
    if (raw === undefined || raw === null || raw === '') return { bad: { field: this.fields.label, reason: 'missing' } };
    if (typeof raw !== 'string' && typeof raw !== 'number') return { bad: { field: this.fields.label, reason: 'must be a string or number' } };
    const label = label2id.get(String(raw));
    if (label === undefined) return { bad: { field: this.fields.label, reason: `unknown label "${raw}" (known: ${[...label2id.keys()].join(', ')})` } };
    // Counted only when the text was cut: one that encodes to exactly max_seq_len tokens is whole.
    let tokens = this.tok.encode(text.ok);
    if (tokens.length > this.maxSeqLen) {
      this.truncated++;
      tokens = encodeTruncated(this.tok, text.ok, this.maxSeqLen);
    }
    return { ok: { tokens, label, source } };
  }
}

/**
 * Concatenates causal-LM examples (each already ends with EOS) into rows of exactly maxSeqLen tokens,
 * as transformers' group_texts: attention crosses example boundaries, the EOS between them tells the
 * model where one ends. The last partial row is kept. Each example keeps its own BOS when the
 * tokenizer adds one, so every document starts with exactly one BOS wherever it falls in a row, as in
 * run_clm (which tokenises each text with its specials before grouping); rows are not given extra ones.
 */
export function pack(examples: LmExample[], maxSeqLen: number): LmExample[] {
  const out: LmExample[] = [];
  let cur: LmExample = { tokens: [], lossMask: [], source: '' };
  for (const ex of examples) {
    for (let i = 0; i < ex.tokens.length; i++) {
      cur.tokens.push(ex.tokens[i]);
      cur.lossMask.push(ex.lossMask[i]);
      if (i === 0) cur.source += (cur.source ? '+' : '') + ex.source;
      if (cur.tokens.length === maxSeqLen) {
        out.push(cur);
        cur = { tokens: [], lossMask: [], source: ex.source };
      }
    }
  }
  if (cur.tokens.length > 1) out.push(cur);
  return out;
}
