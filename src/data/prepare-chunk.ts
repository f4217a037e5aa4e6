/**
 * One block of records -> examples, the unit of parallel preparation (prepare-pool.ts runs it on
 * worker threads or in-process). Judges each line as readRecords does and each record as
 * prepareData does (ExampleBuilder, the "fewer than 2 tokens" rule), so the cache holds exactly the
 * examples of the in-memory path. Output is flat typed arrays (cheap to post between threads):
 *   lines (n), lengths (n), labels (n, -1 for causal LM), tokens (sum of lengths), mask (same)
 * plus the bad records in line order.
 */
import type { CompiledJob } from '../config/compile.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { ExampleBuilder } from './examples.ts';
import { forEachJsonlLine, type BadRecord, type RawRecord } from './records.ts';

export type ChunkInput =
  /** `owned`: bytes.buffer is the sender's alone, so it is transferred to the thread whatever its size. */
  | { kind: 'lines'; bytes: Uint8Array; firstLine: number; owned?: boolean }
  /** CSV records parsed by the main thread (csv-parse needs the whole text for quoted newlines). */
  | { kind: 'records'; records: RawRecord[]; bad: BadRecord[] };

export interface ChunkOutput {
  lines: Int32Array;
  lengths: Int32Array;
  labels: Int32Array;
  tokens: Int32Array;
  mask: Uint8Array;
  /** Records judged (kept or bad, blank lines excluded). */
  records: number;
  truncated: number;
  bad: BadRecord[];
}

/** What a thread needs to build examples: plain data (it crosses to worker threads). */
export interface ChunkSpec {
  task: CompiledJob['task'];
  format: CompiledJob['data']['format'];
  fields: CompiledJob['data']['fields'];
  maxSeqLen: number;
  addSpecialTokens: boolean;
  maxRecordBytes: number;
  /** Classification: label name -> id (decided from the whole file before any chunk is built). */
  labels?: string[];
}

export function chunkSpec(job: CompiledJob, labels?: string[]): ChunkSpec {
  const d = job.data;
  return { task: job.task, format: d.format, fields: d.fields, maxSeqLen: d.maxSeqLen, addSpecialTokens: d.addSpecialTokens, maxRecordBytes: d.maxRecordBytes, labels };
}

export class ChunkBuilder {
  private readonly builder: ExampleBuilder;
  private readonly label2id: Map<string, number>;
  constructor(private readonly spec: ChunkSpec, tok: Tokenizer) {
    this.builder = new ExampleBuilder(tok, spec.format, spec.fields, spec.maxSeqLen, spec.addSpecialTokens);
    this.label2id = new Map((spec.labels ?? []).map((l, i) => [l, i]));
  }

  build(file: string, input: ChunkInput): ChunkOutput {
    const lines: number[] = [];
    const lengths: number[] = [];
    const labels: number[] = [];
    // Growing typed arrays, not number[] + Int32Array.from: copying ids one push at a time was a
    // quarter of a preparation thread's time once the tokenizer was fast (notes/s6-tok.md).
    const tokens = new GrowingArray(Int32Array, 1 << 16);
    const mask = new GrowingArray(Uint8Array, 1 << 16);
    const bad: BadRecord[] = [];
    let records = 0;
    const truncatedBefore = this.builder.truncated;
    const one = (r: RawRecord | BadRecord) => {
      records++;
      if ('reason' in r) {
        bad.push(r);
        return;
      }
      const source = `${file}:${r.line}`;
      const res = this.spec.task === 'classification' ? this.builder.cls(r, source, this.label2id) : this.builder.lm(r, source);
      if ('bad' in res) {
        bad.push({ file, line: r.line, ...res.bad });
      } else if ('label' in res.ok || res.ok.tokens.length >= 2) {
        lines.push(r.line);
        lengths.push(res.ok.tokens.length);
        tokens.append(res.ok.tokens);
        if ('label' in res.ok) labels.push(res.ok.label);
        else {
          labels.push(-1);
          mask.append(res.ok.lossMask);
        }
      } else {
        bad.push({ file, line: r.line, reason: 'encodes to fewer than 2 tokens: nothing to predict' });
      }
    };
    if (input.kind === 'lines') {
      forEachJsonlLine(file, input.bytes, input.firstLine, this.spec.maxRecordBytes, one);
    } else {
      // The reader's bad lines and the records' own problems, in line order (as prepareData fails them).
      const all: Array<RawRecord | BadRecord> = [...input.records, ...input.bad].sort((a, b) => a.line - b.line);
      all.forEach(one);
    }
    return {
      lines: Int32Array.from(lines), lengths: Int32Array.from(lengths), labels: Int32Array.from(labels),
      tokens: tokens.take(), mask: mask.take(), records, truncated: this.builder.truncated - truncatedBefore, bad,
    };
  }
}

/** An append-only typed array that doubles its buffer; `take` returns exactly the values appended. */
class GrowingArray<T extends Int32Array | Uint8Array> {
  private data: T;
  private length = 0;
  constructor(private readonly make: { new (n: number): T }, capacity: number) {
    this.data = new make(capacity);
  }

  append(values: readonly number[]): void {
    const need = this.length + values.length;
    if (need > this.data.length) {
      const grown = new this.make(Math.max(need, 2 * this.data.length));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    const d = this.data;
    let at = this.length;
    for (let i = 0; i < values.length; i++) d[at++] = values[i];
    this.length = at;
  }

  /** A copy of exactly the appended values (its own buffer: it is transferred to the main thread). */
  take(): T {
    return this.data.slice(0, this.length) as T;
  }
}
