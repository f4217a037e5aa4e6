/**
 * Reads a dataset file into records with their line numbers: JSON Lines (.jsonl/.json) or CSV
 * (.csv, header row; csvRecords streams it). readRecords holds the whole file (the in-memory path and
 * the tests' reference); the prepared-dataset cache streams both formats (cache-build.ts). Bad lines (not UTF-8, over the size limit, malformed JSON, not an object) become
 * BadRecords that name file and line; the caller decides whether they fail the run or are skipped.
 */
import { isUtf8 } from 'node:buffer';
import type { Hash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { pipeline, Transform } from 'node:stream';
import { parse as parseCsvStream, type Options as CsvOptions } from 'csv-parse';
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
  if (extname(file).toLowerCase() === '.csv') {
    const records: RawRecord[] = [];
    for await (const r of csvRecords(file, { maxRecordBytes })) records.push(r);
    return { records, bad: [] };
  }
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch {
    throw new InputError(`${file}: cannot read the dataset file; check data.train / data.eval in the job spec`);
  }
  return readJsonl(file, buf, maxRecordBytes);
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

/** Options of csvRecords: the byte hash and progress are updated as the file streams past. */
export interface CsvStreamOptions {
  maxRecordBytes: number;
  hash?: Hash;
  /** Bytes read so far (progress). */
  onBytes?: (total: number) => void;
}

/**
 * A CSV file's records (header row = field names), streamed: csv-parse's stream parser over 64 KiB
 * reads, so memory is the records of one read, whatever the file size. A quoted field may span lines;
 * each record is numbered by the line it starts on. Malformed CSV (an unclosed quote, a row with
 * another number of fields than the header, a record over data.max_record_bytes) and bytes that are
 * not UTF-8 throw a DataError naming file, line and (where csv-parse knows it) the column's field:
 * a CSV cannot be resynchronised after such an error, so it is never skipped.
 */
const CSV_READ_BYTES = 64 << 10;

export async function* csvRecords(file: string, o: CsvStreamOptions): AsyncGenerator<RawRecord> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    throw new InputError(`${file}: cannot read the dataset file; check data.train / data.eval in the job spec`);
  }
  const bytes = new CsvBytes(file, o);
  let header: string[] | undefined;
  // on_record runs inside the parser, record by record, before a later record's error: so when an
  // error comes, `bytes` has counted lines up to the last good record (the loop below may not have
  // seen the records parsed from the same read yet). columns: false: the header comes out as the
  // first row, so its bytes are counted like a record's; rows become objects here.
  const options: CsvOptions<RawRecord, string[]> = {
    skip_empty_lines: true, relax_column_count: false, bom: true, max_record_size: o.maxRecordBytes,
    on_record: (row, context) => {
      const line = bytes.recordStart(context.bytes);
      if (!header) {
        header = row;
        return null; // dropped
      }
      const value: Record<string, unknown> = Object.fromEntries(header.map((name, i) => [name, row[i]]));
      return { line, value } satisfies RawRecord;
    },
  };
  // (csv-parse's overloads type on_record as returning a row of the input's kind; it may return anything.)
  const parser = parseCsvStream(options as unknown as CsvOptions);
  // 64 KiB reads: csv-parse turns a whole read into records before the loop takes the first, so the
  // read size bounds the records in flight (a 1 MiB read of short rows is ~250k record objects).
  pipeline(fh.createReadStream({ highWaterMark: CSV_READ_BYTES }), bytes, parser, () => undefined); // errors surface in the loop below
  try {
    for await (const r of parser as AsyncIterable<RawRecord>) yield r;
  } catch (err) {
    if (err instanceof DataError) throw err;
    const e = err as Error & { code?: string; column?: string | number | null };
    if (!e.code?.startsWith('CSV_') && !e.code?.startsWith('INVALID_')) throw new InputError(`${file}: cannot read the dataset file (${e.message})`);
    // csv-parse names the column by its index (columns: false): the header gives its name.
    const col = typeof e.column === 'number' && !e.code.includes('INCONSISTENT') ? e.column : undefined;
    const field = col === undefined ? undefined : header?.[col] ?? `column ${col + 1}`;
    // csv-parse's own "at line N" miscounts a \r\n inside quotes; the line named is the bad record's first.
    const reason = `malformed CSV (${e.message.replace(/,? (at|on) line \d+/, '')})`;
    throw new DataError({ file, line: bytes.nextRecordLine(), ...(field ? { field } : {}), reason });
  } finally {
    parser.destroy();
  }
}

/**
 * The bytes on their way to csv-parse: hashed, checked as UTF-8 (naming the first bad line), and
 * kept until the records covering them have passed, so each record's first line can be counted from
 * the parser's byte offsets (csv-parse's own line count is off after a quoted \r\n).
 */
class CsvBytes extends Transform {
  /** Chunks not yet behind the last record; queue[0] starts at byte queueAt. */
  private readonly queue: Buffer[] = [];
  private queueAt = 0;
  /** The last record's end (byte offset) and the line that offset is on. */
  private pos = 0;
  private line = 1;
  private total = 0;
  /** UTF-8 check: the bytes of a character cut by the chunk boundary, and the newlines before them. */
  private carry = Buffer.alloc(0);
  private checkedLines = 1;

  constructor(private readonly file: string, private readonly o: CsvStreamOptions) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error) => void): void {
    this.o.hash?.update(chunk);
    this.total += chunk.length;
    this.o.onBytes?.(this.total);
    try {
      this.checkUtf8(chunk, false);
    } catch (err) {
      done(err as Error);
      return;
    }
    this.queue.push(chunk);
    this.push(chunk);
    done();
  }

  override _flush(done: (err?: Error) => void): void {
    try {
      this.checkUtf8(Buffer.alloc(0), true);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  /** The first line of the record ending at byte `end` (blank lines before it skipped, as csv-parse skips them). */
  recordStart(end: number): number {
    const start = this.nextRecordLine();
    this.line += this.newlines(this.pos, end);
    this.pos = end;
    this.forget();
    return start;
  }

  /** The line the next record starts on: after the last record, past blank lines. */
  nextRecordLine(): number {
    let at = this.pos;
    let line = this.line;
    for (;;) {
      const b = this.byteAt(at);
      if (b === undefined || (b !== 0x0a && b !== 0x0d)) return line;
      if (b === 0x0a) line++;
      at++;
    }
  }

  private byteAt(at: number): number | undefined {
    let off = at - this.queueAt;
    for (const c of this.queue) {
      if (off < c.length) return c[off];
      off -= c.length;
    }
    return undefined;
  }

  private newlines(from: number, to: number): number {
    let n = 0;
    let base = this.queueAt;
    for (const c of this.queue) {
      const lo = Math.max(from - base, 0);
      const hi = Math.min(to - base, c.length);
      for (let i = lo < hi ? c.indexOf(0x0a, lo) : -1; i >= 0 && i < hi; i = c.indexOf(0x0a, i + 1)) n++;
      base += c.length;
      if (base >= to) break;
    }
    return n;
  }

  /** Chunks wholly before the last record's end are no longer needed. */
  private forget(): void {
    while (this.queue.length && this.queueAt + this.queue[0].length <= this.pos) this.queueAt += this.queue.shift()!.length;
  }

  /** Checks whole characters (a character cut at the chunk's end waits for the next chunk). */
  private checkUtf8(chunk: Buffer, last: boolean): void {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const keep = last ? 0 : cutCharBytes(data);
    const whole = data.subarray(0, data.length - keep);
    if (!isUtf8(whole)) {
      let line = this.checkedLines;
      let start = 0;
      for (;;) {
        const nl = whole.indexOf(0x0a, start);
        const end = nl < 0 ? whole.length : nl;
        if (!isUtf8(whole.subarray(start, end))) throw new DataError({ file: this.file, line, reason: 'not valid UTF-8 (CSV files must be UTF-8 throughout)' });
        if (nl < 0) break;
        line++;
        start = nl + 1;
      }
      throw new DataError({ file: this.file, line, reason: 'not valid UTF-8 (CSV files must be UTF-8 throughout)' });
    }
    this.checkedLines += countNewlines(whole);
    this.carry = Buffer.from(data.subarray(data.length - keep));
  }
}

/** How many bytes at the end of `b` begin a UTF-8 character that continues past it (0..3). */
function cutCharBytes(b: Uint8Array): number {
  for (let k = 1; k <= Math.min(3, b.length); k++) {
    const c = b[b.length - k];
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead byte
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

function countNewlines(b: Uint8Array): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}
