/**
 * The Hugging Face tokenizer file format shared by the builders: added-token entries, dense id
 * assignment, and writing the three files atomically.
 */
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export type BuiltTokenizer = { tokenizerJson: object; tokenizerConfig: object; specialTokensMap: object };

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

/** Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json, each atomically. */
export async function writeTokenizerFiles(dir: string, built: BuiltTokenizer): Promise<void> {
  const files: Array<[string, object]> = [
    ['tokenizer.json', built.tokenizerJson],
    ['tokenizer_config.json', built.tokenizerConfig],
    ['special_tokens_map.json', built.specialTokensMap],
  ];
  for (const [name, value] of files) await writeFileAtomic(join(dir, name), toJsonText(value) + '\n');
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

export function checkVocabSize(vocabSize: number, minimum: number, what: string): void {
  if (!Number.isInteger(vocabSize) || vocabSize < minimum) {
    throw new InputError(`vocabSize ${vocabSize} is too small: ${what} needs at least ${minimum} ids`);
  }
}

/** Placeholder names that fill the vocabulary when the corpus has no more pairs to merge. */
export function reservedNames(count: number, taken: readonly string[], name: (i: number) => string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (!taken.includes(name(i))) out.push(name(i));
  return out;
}

export function orderedVocab(tokens: readonly string[]): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const t of tokens) {
    if (vocab.has(t)) throw new Error(`internal: token ${JSON.stringify(t)} would get two ids`);
    vocab.set(t, vocab.size);
  }
  return vocab;
}

export function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export function addedTokensDecoder(added: ReadonlyArray<ReturnType<typeof addedToken>>): Record<string, object> {
  return Object.fromEntries(
    added.map(({ id, content, lstrip, normalized, rstrip, single_word, special }) => [
      String(id),
      { content, lstrip, normalized, rstrip, single_word, special },
    ]),
  );
}
