/**
 * Where a job's prepared data lives and the key that says whether it is still valid. The key is a
 * sha256 over exactly the inputs that change the examples (so a change in any of them rebuilds, and a
 * change in anything else, the learning rate, the world size, does not):
 *   format version; tokenizer.json + tokenizer_config.json bytes; each data file's absolute path,
 *   size and mtime (as HF datasets fingerprints local files: an edit that keeps both size and mtime
 *   is not seen); task; format and the fields it reads; max_seq_len; add_special_tokens; packing;
 *   on_bad_record; max_record_bytes; the eval split (eval file, or eval_fraction and the seed that
 *   draws it); classification: the model's own label names.
 * Location (first that applies): $RINGTUNE_CACHE; `.ringtune-cache/` next to the training file when
 * that directory is writable (a shared data volume then shares the cache across a cluster's pods);
 * ~/.cache/ringtune/datasets ($XDG_CACHE_HOME/ringtune/datasets).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { CompiledJob, DataFormat } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import { FORMAT_VERSION } from './example-store.ts';

/** The inputs recorded in every split's header (so `ringtune data info` and a corrupt-cache error can say what a cache is). */
export interface CacheInputs {
  formatVersion: number;
  tokenizerSha256: string;
  dataFiles: Array<{ path: string; bytes: number; mtimeMs: number }>;
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
    dataFiles.push({ path: resolve(file), bytes: s.size, mtimeMs: s.mtimeMs });
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

/** 32 hex digits of sha256 over the inputs (canonical JSON: the object above has a fixed key order). */
export function cacheKey(inputs: CacheInputs): string {
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 32);
}

/** The directory holding one cache per key. `env` is process.env in production (tests pass their own). */
export async function cacheRoot(trainPath: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.RINGTUNE_CACHE) return resolve(env.RINGTUNE_CACHE);
  const beside = dirname(resolve(trainPath));
  if (await access(beside, constants.W_OK).then(() => true, () => false)) return join(beside, '.ringtune-cache');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ringtune', 'datasets');
}
