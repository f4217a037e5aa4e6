/**
 * The texts `ringtune classify --input FILE` reads, `-` being stdin. Two forms:
 *   JSONL       the file name ends in .jsonl / .json, or (any other name, stdin) its first non-blank
 *               character is `{`: one JSON object per line with a string `text` field; its `id`
 *               (string or number) names the line in the output, else FILE:LINE does.
 *   plain text  anything else: one text per line, written back as `text` in the output.
 * Blank lines are skipped in both forms (line numbers still count them). A text given this way may
 * start with `--`, which on the command line commander would take for an option.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { InputError } from '../errors.ts';

/** One text to classify and how its output line names it. */
export interface TextItem {
  text: string;
  /** Set for JSONL input: the record's id, else FILE:LINE. Plain-text lines are named by their text. */
  id?: string | number;
  /** FILE:LINE, for messages. */
  where: string;
}

export async function readTextInput(file: string): Promise<TextItem[]> {
  const name = file === '-' ? 'stdin' : file;
  const content = file === '-' ? await readStdin() : await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`--input ${file}: cannot read it (${err.code ?? err.message})`);
  });
  const lines = content.replace(/^\uFEFF/, '').split(/\r?\n/);
  const ext = extname(file).toLowerCase();
  const jsonl = ext === '.jsonl' || ext === '.json' || (ext !== '.txt' && content.trimStart().startsWith('{'));
  const items: TextItem[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const where = `${name}:${i + 1}`;
    if (!jsonl) {
      items.push({ text: line, where });
      continue;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new InputError(`--input ${where}: not a JSON object (${(err as Error).message}); a JSONL input has one {"text": ...} object per line`);
    }
    const rec = v as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || typeof rec.text !== 'string') {
      throw new InputError(`--input ${where}: needs a string "text" field`);
    }
    const id = typeof rec.id === 'string' || typeof rec.id === 'number' ? rec.id : where;
    items.push({ text: rec.text, id, where });
  }
  if (items.length === 0) throw new InputError(`--input ${name} has no texts`);
  return items;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
