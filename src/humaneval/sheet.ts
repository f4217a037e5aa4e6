/**
 * sheet.csv: written blank from a key, read back filled in. Reading checks every row against the
 * key and lists all problems of a sheet at once, each naming file, row and column (rows counted as
 * a spreadsheet shows them: the header is row 1), so a rater can fix a sheet in one pass:
 *   - a missing column, or a column that is not part of this sample set
 *   - an id the key does not know (a sheet of another `ringtune samples` run, or a typo)
 *   - a score that is not an integer on the scale
 *   - scores or a comment without a rater's name
 *   - the same rater rating the same id twice (also across sheets: readSheets)
 * An empty score cell is "not rated"; a row without any score or comment is skipped.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { InputError } from '../errors.ts';
import { csvText } from './csv-write.ts';
import type { SampleKey } from './key.ts';
import { FIXED_COLUMNS, sheetColumns } from './sheet-format.ts';

/** A sheet that does not fit its key; the message lists every problem found. */
export class RatingSheetError extends InputError {
  override readonly name: string = 'RatingSheetError';
}

/** One rater's scores of one sample. */
export interface Rating {
  id: string;
  rater: string;
  /** Criterion -> score; a criterion left empty is absent (a row with only a comment has none). */
  scores: Record<string, number>;
  comment: string;
  /** "FILE row N", for messages. */
  where: string;
}

/** The blank sheet of a key: one row per sample in the key's (blinded) order. */
export function sheetCsv(key: SampleKey): string {
  const columns = sheetColumns(key.criteria);
  const rows = key.samples.map((s) => [s.id, key.prompts[s.prompt].text, s.completion, ...key.criteria.map(() => ''), '', '']);
  const guard = columns.map((c) => c === FIXED_COLUMNS.prompt || c === FIXED_COLUMNS.completion || c === FIXED_COLUMNS.comment);
  return csvText([columns, ...rows], guard);
}

const MAX_LISTED = 25;

/** Parses one filled-in sheet; `file` names it in messages. */
export function parseSheet(text: string, file: string, key: SampleKey): Rating[] {
  const read = (delimiter: string): string[][] => {
    try {
      return parse(text, { bom: true, delimiter, relax_column_count: true, skip_empty_lines: false }) as string[][];
    } catch (err) {
      throw new RatingSheetError(`${file}: not readable as CSV (${(err as Error).message})`);
    }
  };
  // Spreadsheets in locales with a decimal comma save "CSV" with semicolons: told by the header line.
  const header0 = text.split(/\r?\n/, 1)[0];
  const records = read(!header0.includes(',') && header0.includes(';') ? ';' : ',');
  if (records.length === 0) throw new RatingSheetError(`${file}: empty; expected the header ${sheetColumns(key.criteria).join(',')}`);
  const problems: string[] = [];
  const header = records[0].map((h) => h.trim().toLowerCase());
  const expected = sheetColumns(key.criteria);
  const at = new Map<string, number>();
  header.forEach((h, i) => {
    if (h === '') {
      if (records.some((r) => (r[i] ?? '').trim() !== '')) problems.push(`${file} row 1 column ${i + 1}: no header name, but the column holds values`);
    } else if (!expected.includes(h)) {
      problems.push(`${file} row 1 column "${records[0][i]}": not a column of this sample set (columns: ${expected.join(', ')})`);
    } else if (at.has(h)) {
      problems.push(`${file} row 1 column "${h}": appears twice`);
    } else {
      at.set(h, i);
    }
  });
  const missing = expected.filter((c) => !at.has(c) && c !== FIXED_COLUMNS.prompt && c !== FIXED_COLUMNS.completion && c !== FIXED_COLUMNS.comment);
  if (missing.length > 0) problems.push(`${file} row 1: missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')} (the header is ${expected.join(',')})`);
  if (problems.length > 0) throw new RatingSheetError(listProblems(file, problems));

  const known = new Set(key.samples.map((s) => s.id));
  const { min, max } = key.scale;
  const ratings: Rating[] = [];
  const seen = new Map<string, number>();
  const cell = (r: string[], c: string) => (r[at.get(c)!] ?? '').trim();
  for (let i = 1; i < records.length; i++) {
    const r = records[i];
    const row = i + 1;
    if (r.every((f) => f.trim() === '')) continue;
    const id = cell(r, FIXED_COLUMNS.id);
    const scores: Record<string, number> = {};
    for (const c of key.criteria) {
      const v = cell(r, c);
      if (v === '') continue;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) problems.push(`${file} row ${row} column "${c}": "${v}" is not an integer score from ${min} to ${max}`);
      else scores[c] = n;
    }
    if (id === '') {
      problems.push(`${file} row ${row} column "id": empty; every rated row keeps the id the sheet came with`);
      continue;
    }
    if (!known.has(id)) {
      problems.push(`${file} row ${row} column "id": unknown id "${id}"; this key's ids look like ${key.samples[0].id} (a sheet of another \`ringtune samples\` run?)`);
      continue;
    }
    const rater = cell(r, FIXED_COLUMNS.rater);
    const comment = at.has(FIXED_COLUMNS.comment) ? cell(r, FIXED_COLUMNS.comment) : '';
    if (Object.keys(scores).length === 0 && comment === '') continue;
    if (rater === '') {
      problems.push(`${file} row ${row} column "rater": empty, but the row has scores or a comment; write the rater's name on every rated row`);
      continue;
    }
    const pair = `${rater}\u0000${id}`;
    if (seen.has(pair)) {
      problems.push(`${file} row ${row} column "id": rater "${rater}" rated ${id} already in row ${seen.get(pair)}`);
      continue;
    }
    seen.set(pair, row);
    ratings.push({ id, rater, scores, comment, where: `${file} row ${row}` });
  }
  const extra = records.slice(1).findIndex((r) => r.slice(header.length).some((f) => f.trim() !== ''));
  if (extra >= 0) problems.push(`${file} row ${extra + 2} column ${header.length + 1}: a value past the last column of the header`);
  if (problems.length > 0) throw new RatingSheetError(listProblems(file, problems));
  return ratings;
}

function listProblems(file: string, problems: string[]): string {
  const shown = problems.slice(0, MAX_LISTED).map((p) => `  ${p}`);
  const more = problems.length > MAX_LISTED ? [`  ... and ${problems.length - MAX_LISTED} more`] : [];
  return `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the rating sheet:\n${[...shown, ...more].join('\n')}`;
}

/** Reads every sheet; the same rater rating the same id in two sheets is an error naming both places. */
export async function readSheets(files: readonly string[], key: SampleKey): Promise<Rating[]> {
  const all: Rating[] = [];
  const first = new Map<string, Rating>();
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new InputError(`${file}: cannot read it (${err.code ?? err.message})`);
    });
    for (const r of parseSheet(text, file, key)) {
      const pair = `${r.rater}\u0000${r.id}`;
      const before = first.get(pair);
      if (before) throw new RatingSheetError(`${r.where} column "id": rater "${r.rater}" rated ${r.id} already in ${before.where}`);
      first.set(pair, r);
      all.push(r);
    }
  }
  return all;
}
