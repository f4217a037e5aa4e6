/**
 * Where a job's prepared data lives and the key that says whether it is still valid. The key is a
 * sha256 over exactly the inputs that change the examples (so a change in any of them rebuilds, and a
 * change in anything else, the learning rate, the world size, does not):
 *   format version; tokenizer.json + tokenizer_config.json bytes; each data file's absolute path,
 *   size, mtime and a sha256 of its first and last MiB (the whole file when it is at most 2 MiB);
 *   task; format and the fields it reads; max_seq_len; add_special_tokens; packing; on_bad_record;
 *   max_record_bytes; the eval split (eval file, or eval_fraction and the seed that draws it);
 *   classification: the model's own label names.
 * What that guarantees about the data (HF datasets fingerprints local files by path, size and mtime
 * alone): any edit that changes the size or the mtime rebuilds; an edit that keeps both (`touch -d`,
 * a copy with preserved times, a same-length rewrite) rebuilds when it touches the first or last MiB,
 * and anywhere in a file of at most 2 MiB. Costs 2 MiB of reads per file per start. What it cannot
 * see, a same-size same-mtime edit in the middle of a larger file, `ringtune data prepare --verify`
 * finds: it hashes every byte and compares with the sha256 recorded when the cache was built
 * (meta.json stats.dataSha256), rebuilding on a difference.
 * Location (first that applies): $RINGTUNE_CACHE; `.ringtune-cache/` next to the training file when
 * that directory is writable (a shared data volume then shares the cache across a cluster's pods);
 * ~/.cache/ringtune/datasets ($XDG_CACHE_HOME/ringtune/datasets).
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { CompiledJob, DataFormat } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import { FORMAT_VERSION } from './example-store.ts';

/** The inputs recorded in every split's header (so `ringtune data info` and a corrupt-cache error can say what a cache is). */
export interface CacheInputs {
  formatVersion: number;
  tokenizerSha256: string;
  dataFiles: Array<{ path: string; bytes: number; mtimeMs: number; edgesSha256: string }>;
  task: CompiledJob['task'];
  format: DataFormat;
  fields: Record<string, string>;
  maxSeqLen: number;
  addSpecialTokens: boolean;
  packing: boolean;
  onBadRecord: 'fail' | 'skip';
  maxRecordBytes: number;
  evalSplit: { file: string } | { fraction: number; seed: number } | 'none';
  modelLabels?: string[];
}

const FIELDS_READ: Record<DataFormat, Array<keyof CompiledJob['data']['fields']>> = {
  text: ['text'], 'prompt-completion': ['prompt', 'completion'], messages: ['messages'], label: ['text', 'label'],
};

export async function cacheInputs(job: CompiledJob, modelLabels?: string[]): Promise<CacheInputs> {
  const d = job.data;
  const tokHash = createHash('sha256');
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    const bytes = await readFile(join(job.modelDir, name)).catch(() => undefined);
    tokHash.update(`${name}:${bytes ? bytes.length : -1}:`);
    if (bytes) tokHash.update(bytes);
  }
  const dataFiles = [];
  for (const file of [d.trainPath, ...(d.evalPath ? [d.evalPath] : [])]) {
    const s = await stat(file).catch(() => {
      throw new InputError(`${file}: cannot read the dataset file; check data.train / data.eval in the job spec`);
    });
    dataFiles.push({ path: resolve(file), bytes: s.size, mtimeMs: s.mtimeMs, edgesSha256: await edgesSha256(file, s.size) });
  }
  return {
    formatVersion: FORMAT_VERSION,
    tokenizerSha256: tokHash.digest('hex'),
    dataFiles,
    task: job.task,
    format: d.format,
    fields: Object.fromEntries(FIELDS_READ[d.format].map((f) => [f, d.fields[f]])),
    maxSeqLen: d.maxSeqLen,
    addSpecialTokens: d.addSpecialTokens,
    packing: d.packing && job.task === 'causal-lm',
    onBadRecord: d.onBadRecord,
    maxRecordBytes: d.maxRecordBytes,
    evalSplit: d.evalPath ? { file: resolve(d.evalPath) } : d.evalFraction > 0 ? { fraction: d.evalFraction, seed: job.training.seed } : 'none',
    ...(job.task === 'classification' && modelLabels ? { modelLabels } : {}),
  };
}

/** The first and last EDGE_BYTES of a file (the whole file when it is at most twice that). */
export const EDGE_BYTES = 1 << 20;

async function edgesSha256(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(size, 2 * EDGE_BYTES));
    const ranges: Array<[number, number]> = size <= 2 * EDGE_BYTES ? [[0, size]] : [[0, EDGE_BYTES], [size - EDGE_BYTES, EDGE_BYTES]];
    for (const [at, n] of ranges) {
      const { bytesRead } = await fh.read(buf, 0, n, at);
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** sha256 of every byte of a file, streamed (`ringtune data prepare --verify`). */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** 32 hex digits of sha256 over the inputs (canonical JSON: the object above has a fixed key order). */
export function cacheKey(inputs: CacheInputs): string {
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 32);
}

/** The directory holding one cache per key. `env` is process.env in production (tests pass their own). */
export async function cacheRoot(trainPath: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.RINGTUNE_CACHE) return resolve(env.RINGTUNE_CACHE);
  const beside = dirname(resolve(trainPath));
  if (await access(beside, constants.W_OK).then(() => true, () => false)) return join(beside, '.ringtune-cache');
  return userCacheRoot(env);
}

/** $RINGTUNE_CACHE, else the user's cache directory: where `ringtune data cache list` looks without a job. */
export function userCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RINGTUNE_CACHE) return resolve(env.RINGTUNE_CACHE);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ringtune', 'datasets');
}
