/**
 * Builds one prepared-dataset cache in a staging directory (prepared-cache.ts swaps it in), streaming:
 *   1. classification only: one pass over the training file for its label names (dataset.ts labelSet)
 *   2. each data file, block by block through the chunk pool (threads), -> `all-<file>` split in file
 *      order, bad records failing the run or skipped as prepareData does
 *   3. the eval split (the eval file, or the seeded held-out share of the training examples), and
 *      packing, streamed from the `all-*` splits into the final `train` and `eval` splits
 * Memory: the blocks in flight (window x blockBytes), one packed row, the held-out bitmap (1 byte per
 * training example) and the held-out permutation while drawing it (4 bytes per example); never the data.
 * CSV files stream the same way (csv-parse's stream parser): a block and one record at a time.
 */
import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { CompiledJob } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { Rng } from '../util/rng.ts';
import { labelSet } from './dataset.ts';
import { StoreReader, StoreWriter, type StoreHeader } from './example-store.ts';
import { permutation } from './shuffle.ts';
import type { LmExample } from './examples.ts';
import { lineBlocks, type LineBlock } from './line-blocks.ts';
import { chunkPool, type ChunkPool } from './prepare-pool.ts';
import { chunkSpec, type ChunkInput, type ChunkOutput } from './prepare-chunk.ts';
import { csvRecords, DataError, forEachJsonlLine, formatBad, oversizeLine, type BadRecord, type RawRecord } from './records.ts';

const CSV_BATCH = 512;

export interface PrepareProgress {
  phase: 'labels' | 'tokenise' | 'split';
  file: string;
  bytesDone: number;
  bytesTotal: number;
  records: number;
}

export interface PrepareStats {
  /** Records judged in the data files (blank lines excluded), kept or bad. */
  records: number;
  /** Tokens in the final train + eval splits. */
  tokens: number;
  truncated: number;
  skipped: number;
  trainExamples: number;
  evalExamples: number;
  dataBytes: number;
  /** sha256 of each data file's bytes as read. */
  dataSha256: string[];
  threads: number;
  seconds: number;
}

export interface BuildOptions {
  modelDir: string;
  tok: Tokenizer;
  /** Worker threads tokenising (0: this thread). */
  threads: number;
  blockBytes?: number;
  onProgress?: (p: PrepareProgress) => void;
}

export interface BuiltMeta {
  key: string;
  labels?: string[];
  skipped: BadRecord[];
  stats: PrepareStats;
}

export async function buildCache(job: CompiledJob, header: StoreHeader, dir: string, modelLabels: string[] | undefined, o: BuildOptions): Promise<BuiltMeta> {
  const t0 = performance.now();
  const d = job.data;
  const blockBytes = o.blockBytes ?? 1 << 20;
  const files = [d.trainPath, ...(d.evalPath ? [d.evalPath] : [])];
  const skipped: BadRecord[] = [];
  const fail = (b: BadRecord) => {
    if (d.onBadRecord === 'fail') throw new DataError(b, ` (to skip bad records, ${d.skipBadRecordsHint})`);
    skipped.push(b);
  };

  const labels = job.task === 'classification' ? await trainLabels(job, modelLabels, blockBytes, o.onProgress) : undefined;
  if (labels && labels.length === 1) {
    throw new InputError(`${d.trainPath}: classification needs at least 2 distinct labels in field "${d.fields.label}", found only "${labels[0]}"`);
  }

  const pool = await chunkPool(o.modelDir, o.tok, chunkSpec(job, labels), o.threads);
  let records = 0;
  let truncated = 0;
  let dataBytes = 0;
  const dataSha256: string[] = [];
  const all: string[] = [];
  try {
    for (const [f, file] of files.entries()) {
      const prefix = join(dir, `all-${f}`);
      const w = await StoreWriter.create(prefix, { ...header, split: `all-${f}` });
      const hash = createHash('sha256');
      try {
        const consume = async (out: ChunkOutput) => {
          records += out.records;
          truncated += out.truncated;
          for (const b of out.bad) fail(b);
          await appendChunk(w, file, out);
        };
        await runOrdered(pool, file, inputs(file, d.maxRecordBytes, blockBytes, hash, (bytes) => {
          o.onProgress?.({ phase: 'tokenise', file, bytesDone: bytes, bytesTotal: 0, records });
        }), consume, (b) => { records++; fail(b); });
        await w.finish();
      } catch (err) {
        await w.abandon();
        throw err;
      }
      dataSha256.push(hash.digest('hex'));
      all.push(prefix);
      dataBytes += (await stat(file)).size;
    }
  } finally {
    await pool.close();
  }

  const split = await splitAndPack(job, header, dir, all, dataSha256);
  for (const prefix of all) for (const ext of ['idx', 'tok', 'mask', 'src']) await rm(`${prefix}.${ext}`);
  if (split.train === 0) {
    const why = skipped.length ? ` (${skipped.length} bad records skipped; first: ${formatBad(skipped[0])})` : '';
    throw new InputError(`${d.trainPath}: the training set is empty${why}`);
  }
  const stats: PrepareStats = {
    records, tokens: split.tokens, truncated, skipped: skipped.length, trainExamples: split.train, evalExamples: split.eval,
    dataBytes, dataSha256, threads: pool.threads, seconds: (performance.now() - t0) / 1000,
  };
  return { key: header.key, labels, skipped, stats };
}

/** The file as chunk inputs: JSONL in blocks of whole lines; CSV parsed as it streams (records.ts csvRecords), in batches of 512 records. */
async function* inputs(file: string, maxRecordBytes: number, blockBytes: number, hash: ReturnType<typeof createHash>, onBytes: (n: number) => void): AsyncGenerator<ChunkInput | BadRecord> {
  if (extname(file).toLowerCase() === '.csv') {
    let batch: RawRecord[] = [];
    for await (const r of csvRecords(file, { maxRecordBytes, hash, onBytes })) { // a CSV's errors throw here, naming the line
      batch.push(r);
      if (batch.length === CSV_BATCH) {
        yield { kind: 'records', records: batch, bad: [] };
        batch = [];
      }
    }
    if (batch.length) yield { kind: 'records', records: batch, bad: [] };
    return;
  }
  for await (const b of lineBlocks(file, { blockBytes, maxRecordBytes, onBytes }, hash)) yield b.kind === 'lines' ? b : oversizeLine(file, b.line, b.bytes, maxRecordBytes);
}

/** Submits blocks to the pool keeping up to 2 per thread (at least 2) in flight; consumes results in file order. */
async function runOrdered(pool: ChunkPool, file: string, source: AsyncIterable<ChunkInput | BadRecord>, consume: (o: ChunkOutput) => Promise<void>, bad: (b: BadRecord) => void): Promise<void> {
  const window = Math.max(2, 2 * pool.threads);
  const inFlight: Array<Promise<ChunkOutput> | BadRecord> = [];
  const drainOne = async () => {
    const head = inFlight.shift()!;
    if ('reason' in head) bad(head);
    else await consume(await head);
  };
  try {
    for await (const item of source) {
      const p = 'reason' in item ? item : pool.run(file, item);
      if (!('reason' in p)) p.catch(() => undefined); // awaited in order below; not an unhandled rejection meanwhile
      inFlight.push(p);
      if (inFlight.length >= window) await drainOne();
    }
    while (inFlight.length) await drainOne();
  } finally {
    inFlight.length = 0;
  }
}

async function appendChunk(w: StoreWriter, file: string, out: ChunkOutput): Promise<void> {
  let at = 0;
  for (let i = 0; i < out.lines.length; i++) {
    const n = out.lengths[i];
    const label = out.labels[i];
    await w.append(out.tokens.subarray(at, at + n), `${file}:${out.lines[i]}`, label < 0 ? out.mask.subarray(at, at + n) : undefined, label);
    at += n;
  }
}

/** Label names as prepareData's labelSet finds them, from one streaming pass over the training file. */
async function trainLabels(job: CompiledJob, modelLabels: string[] | undefined, blockBytes: number, onProgress: BuildOptions['onProgress']): Promise<string[]> {
  const d = job.data;
  const values: RawRecord[] = [];
  const seen = new Set<string>();
  const keep = (r: RawRecord | BadRecord) => {
    if ('reason' in r) return;
    const v = r.value[d.fields.label];
    if ((typeof v === 'string' || typeof v === 'number') && !seen.has(String(v))) {
      seen.add(String(v));
      values.push({ line: r.line, value: { [d.fields.label]: v } });
    }
  };
  if (extname(d.trainPath).toLowerCase() === '.csv') {
    for await (const r of csvRecords(d.trainPath, { maxRecordBytes: d.maxRecordBytes })) keep(r);
  } else {
    for await (const b of lineBlocks(d.trainPath, { blockBytes, maxRecordBytes: d.maxRecordBytes, onBytes: (n) => onProgress?.({ phase: 'labels', file: d.trainPath, bytesDone: n, bytesTotal: 0, records: 0 }) })) {
      if (b.kind === 'lines') forEachJsonlLine(d.trainPath, b.bytes, b.firstLine, d.maxRecordBytes, keep);
    }
  }
  return labelSet(values, d.fields.label, modelLabels);
}

/**
 * `all-0` (training file) and `all-1` (eval file, if any) -> the `train` and `eval` splits, exactly as
 * prepareData: the held-out share drawn by Rng(seed ^ 0x5eed) over the training examples, then packing.
 */
async function splitAndPack(job: CompiledJob, header: StoreHeader, dir: string, all: string[], dataSha256: string[]): Promise<{ train: number; eval: number; tokens: number }> {
  const d = job.data;
  const packing = d.packing && job.task === 'causal-lm';
  const trainIn = StoreReader.open(all[0]);
  const evalIn = all[1] ? StoreReader.open(all[1]) : undefined;
  const n = trainIn.length;
  let held: Uint8Array | undefined;
  if (!evalIn && d.evalFraction > 0 && n >= 2) {
    const order = permutation(new Rng(job.training.seed ^ 0x5eed), n);
    held = new Uint8Array(n);
    const nEval = Math.max(1, Math.round(n * d.evalFraction));
    for (let i = 0; i < nEval; i++) held[order[i]] = 1;
  }
  const h = { ...header, dataSha256 };
  const trainOut = await StoreWriter.create(join(dir, 'train'), { ...h, split: 'train' });
  const evalOut = await StoreWriter.create(join(dir, 'eval'), { ...h, split: 'eval' });
  const sink = (w: StoreWriter) => (packing ? new RowPacker(w, d.maxSeqLen) : new PassThrough(w));
  const toTrain = sink(trainOut);
  const toEval = sink(evalOut);
  try {
    for (let i = 0; i < n; i++) await (held?.[i] ? toEval : toTrain).add(trainIn.at(i)!);
    if (evalIn) for (let i = 0; i < evalIn.length; i++) await toEval.add(evalIn.at(i)!);
    await toTrain.finish();
    await toEval.finish();
    const tr = await trainOut.finish();
    const ev = await evalOut.finish();
    return { train: tr.examples, eval: ev.examples, tokens: tr.tokens + ev.tokens };
  } catch (err) {
    await trainOut.abandon();
    await evalOut.abandon();
    throw err;
  } finally {
    trainIn.close();
    evalIn?.close();
  }
}

interface Sink { add(ex: LmExample | { tokens: number[]; label: number; source: string }): Promise<void>; finish(): Promise<void> }

class PassThrough implements Sink {
  constructor(private readonly w: StoreWriter) {}
  async add(ex: Parameters<Sink['add']>[0]): Promise<void> {
    await ('label' in ex ? this.w.append(ex.tokens, ex.source, undefined, ex.label) : this.w.append(ex.tokens, ex.source, ex.lossMask));
  }
  async finish(): Promise<void> {}
}

/** examples.ts pack(), one example at a time: rows of exactly maxSeqLen tokens, the last partial row kept if > 1 token. */
class RowPacker implements Sink {
  private cur: LmExample = { tokens: [], lossMask: [], source: '' };
  constructor(private readonly w: StoreWriter, private readonly maxSeqLen: number) {}
  async add(ex: Parameters<Sink['add']>[0]): Promise<void> {
    const e = ex as LmExample;
    for (let i = 0; i < e.tokens.length; i++) {
      this.cur.tokens.push(e.tokens[i]);
      this.cur.lossMask.push(e.lossMask[i]);
      if (i === 0) this.cur.source += (this.cur.source ? '+' : '') + e.source;
      if (this.cur.tokens.length === this.maxSeqLen) {
        await this.w.append(this.cur.tokens, this.cur.source, this.cur.lossMask);
        this.cur = { tokens: [], lossMask: [], source: e.source };
      }
    }
  }
  async finish(): Promise<void> {
    if (this.cur.tokens.length > 1) await this.w.append(this.cur.tokens, this.cur.source, this.cur.lossMask);
  }
}
