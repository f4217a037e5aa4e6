/**
 * `ringtune samples --prompts FILE`: the prompts to generate from. Two forms, as `classify --input`:
 *   JSONL       name ends in .jsonl / .json, or the first non-blank character is `{`: one object per
 *               line with a string "prompt" (or "text") field and an optional "id" (string or number)
 *   plain text  anything else: one prompt per line
 * Blank lines are skipped (line numbers still count them). Errors name FILE:LINE and the field.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { InputError } from '../errors.ts';
import type { PromptEntry } from './blind.ts';

export async function readPrompts(file: string): Promise<Array<PromptEntry & { where: string }>> {
  const content = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`--prompts ${file}: cannot read it (${err.code ?? err.message})`);
  });
  const text = content.replace(/^\uFEFF/, '');
  const ext = extname(file).toLowerCase();
  const jsonl = ext === '.jsonl' || ext === '.json' || (ext !== '.txt' && text.trimStart().startsWith('{'));
  const out: Array<PromptEntry & { where: string }> = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    const where = `${file}:${i + 1}`;
    if (!jsonl) {
      out.push({ id: i + 1, text: line, where });
      continue;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new InputError(`--prompts ${where}: not a JSON object (${(err as Error).message}); a JSONL prompts file has one {"prompt": ...} per line`);
    }
    const rec = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    const prompt = typeof rec.prompt === 'string' ? rec.prompt : typeof rec.text === 'string' ? rec.text : undefined;
    if (prompt === undefined || prompt.trim() === '') throw new InputError(`--prompts ${where}: needs a non-empty string "prompt" (or "text") field`);
    if (rec.id !== undefined && typeof rec.id !== 'string' && typeof rec.id !== 'number') throw new InputError(`--prompts ${where}: field "id" must be a string or a number`);
    out.push({ id: (rec.id as string | number | undefined) ?? i + 1, text: prompt, where });
  }
  if (out.length === 0) throw new InputError(`--prompts ${file} has no prompts`);
  return out;
}
