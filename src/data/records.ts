/**
 * Reads a dataset file into records with their line numbers: JSON Lines (.jsonl/.json) or CSV
 * (.csv, header row). Bad lines (not UTF-8, over the size limit, malformed JSON, not an object) become
 * BadRecords that name file and line; the caller decides whether they fail the run or are skipped.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { InputError } from '../errors.ts';

export interface RawRecord {
  line: number;
  value: Record<string, unknown>;
}

export interface BadRecord {
  file: string;
  line: number;
  field?: string;
  reason: string;
}

/** A data error names the place: `train.jsonl:12: field "completion": must be a non-empty string`. */
export class DataError extends InputError {
  override readonly name: string = 'DataError';
  constructor(readonly bad: BadRecord, hint = '') {
    super(`${formatBad(bad)}${hint}`);
  }
}

export function formatBad(b: BadRecord): string {
  return `${b.file}:${b.line}: ${b.field ? `field "${b.field}": ` : ''}${b.reason}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function readRecords(file: string, maxRecordBytes: number): Promise<{ records: RawRecord[]; bad: BadRecord[] }> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch {
    throw new InputError(`${file}: cannot read the dataset file; check data.train / data.eval in the job spec`);
  }
  return extname(file).toLowerCase() === '.csv' ? readCsv(file, buf, maxRecordBytes) : readJsonl(file, buf, maxRecordBytes);
}

function readJsonl(file: string, buf: Buffer, maxRecordBytes: number): { records: RawRecord[]; bad: BadRecord[] } {
  const records: RawRecord[] = [];
  const bad: BadRecord[] = [];
  forEachJsonlLine(file, buf, 1, maxRecordBytes, (r) => ('reason' in r ? bad.push(r) : records.push(r)));
  return { records, bad };
}

/**
 * The lines of a JSON Lines buffer, numbered from `firstLine`, each judged as readRecords judges it:
 * a record, a BadRecord, or nothing (blank). The streaming preparation (prepare-chunk.ts) calls it on
 * one block of whole lines at a time, so both paths accept and reject exactly the same lines.
 */
export function forEachJsonlLine(file: string, buf: Uint8Array, firstLine: number, maxRecordBytes: number, each: (r: RawRecord | BadRecord) => void): void {
  let start = 0;
  let line = firstLine - 1;
  while (start < buf.length) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    line++;
    const bytes = buf.subarray(start, end > start && buf[end - 1] === 0x0d ? end - 1 : end);
    start = end + 1;
    const r = judgeJsonlLine(file, line, bytes, maxRecordBytes);
    if (r) each(r);
  }
}

function judgeJsonlLine(file: string, line: number, bytes: Uint8Array, maxRecordBytes: number): RawRecord | BadRecord | undefined {
  if (bytes.length > maxRecordBytes) return oversizeLine(file, line, bytes.length, maxRecordBytes);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { file, line, reason: 'not valid UTF-8' };
  }
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { file, line, reason: `malformed JSON (${(err as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { file, line, reason: 'each line must be a JSON object' };
  return { line, value: value as Record<string, unknown> };
}

/** `bytes` excludes the line's \r\n (the streaming reader counts a line it never holds whole the same way). */
export function oversizeLine(file: string, line: number, bytes: number, maxRecordBytes: number): BadRecord {
  return { file, line, reason: `line of ${bytes} bytes exceeds data.max_record_bytes (${maxRecordBytes})` };
}

function readCsv(file: string, buf: Buffer, maxRecordBytes: number): { records: RawRecord[]; bad: BadRecord[] } {
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    // Find the first offending line for the message.
    let line = 1;
    let start = 0;
    for (let i = 0; i <= buf.length; i++) {
      if (i === buf.length || buf[i] === 0x0a) {
        try {
          utf8.decode(buf.subarray(start, i));
        } catch {
          throw new DataError({ file, line, reason: 'not valid UTF-8 (CSV files must be UTF-8 throughout)' });
        }
        line++;
        start = i + 1;
      }
    }
    throw new DataError({ file, line: 1, reason: 'not valid UTF-8' });
  }
  let rows: Array<{ record: Record<string, string>; info: { lines: number; bytes_records?: number } }>;
  try {
    rows = parseCsv(text, { columns: true, info: true, skip_empty_lines: true, relax_column_count: false, bom: true, max_record_size: maxRecordBytes });
  } catch (err) {
    const e = err as Error & { lines?: number };
    throw new DataError({ file, line: e.lines ?? 0, reason: `malformed CSV (${e.message})` });
  }
  // csv-parse reports the line a record ends on; a quoted field may span lines, so name where it starts.
  return { records: rows.map((r, i) => ({ line: i === 0 ? 2 : rows[i - 1].info.lines + 1, value: r.record })), bad: [] };
}
