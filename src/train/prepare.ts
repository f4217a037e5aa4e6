/**
 * The first building block of every recipe (single process, ring worker, eval, demo): the model's
 * config.json, the tokenizer and the whole dataset, validated before any output is touched, plus
 * what evaluation needs from them (pad id, generation options, which examples to score). Writes nothing.
 * Checks, cheapest first, so a bad job fails in milliseconds rather than after tokenising the data:
 *   config.json sizes (model/config.ts) -> data.max_seq_len within the model's positions -> the model
 *   fits in memory for a forward pass (config/memory.ts) -> tokenizer -> data (data/dataset.ts).
 * What training adds (gradients, AdamW state, activations for backward, a batch the data can fill)
 * is checked by setup.ts, before it loads the weights.
 * Two ways to the data: prepareRun tokenises it into memory; prepareCachedRun opens (or builds once)
 * the prepared-dataset cache (data/prepared-cache.ts), whose splits stay on disk and are read one
 * step's share (or one eval micro-batch) at a time. Every command uses the cache (train, its
 * --dry-run, the worker, eval, the demo); prepareRun is the in-memory reference the tests compare
 * it with. Both give the same examples.
 */
import { join } from 'node:path';
import type { CompiledJob } from '../config/compile.ts';
import { availableMemory, checkMemory, estimateMemory } from '../config/memory.ts';
import { prepareData, type PreparedData } from '../data/dataset.ts';
import { openOrBuildCache, type CacheOptions, type CachedData } from '../data/prepared-cache.ts';
import { InputError } from '../errors.ts';
import { configFromHF, hfKey, type ModelConfig } from '../model/config.ts';
import { readConfigJson } from '../model/model-dir.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import type { GenerationOptions } from './evaluate.ts';

export interface PreparedRun<D extends PreparedData | CachedData = PreparedData> {
  tok: Tokenizer;
  data: D;
  labels?: string[];
  padId: number;
  /** Options for generation metrics (eval.metrics bleu/rouge/exact_match), when asked for. */
  generation?: GenerationOptions;
  modelConfig: ModelConfig;
}

export async function prepareRun(job: CompiledJob): Promise<PreparedRun> {
  return prepareWith(job, (tok, labels) => prepareData(job, tok, labels));
}

/** prepareRun with the training split on disk: opens the job's prepared-dataset cache, building it first if needed. */
export async function prepareCachedRun(job: CompiledJob, o: CacheOptions = {}): Promise<PreparedRun<CachedData>> {
  return prepareWith(job, (tok, labels) => openOrBuildCache(job, tok, labels, o));
}

async function prepareWith<D extends PreparedData | CachedData>(job: CompiledJob, data: (tok: Tokenizer, modelLabels?: string[]) => Promise<D>): Promise<PreparedRun<D>> {
  const { json, config: modelConfig, file } = await readModelConfig(job);
  checkSeqLen(job, modelConfig, file);
  const est = estimateMemory(modelConfig, job.task, { purpose: 'eval', microBatch: job.training.microBatch, seqLen: job.data.maxSeqLen });
  checkMemory(est, availableMemory(), job.jobFile, file);
  const tok = await Tokenizer.fromDir(job.modelDir);
  const modelLabels = json.id2label ? Object.values(json.id2label as Record<string, string>) : undefined;
  const prepared = await data(tok, job.task === 'classification' ? modelLabels : undefined);
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const generation: GenerationOptions | undefined = job.eval.generationMetrics.length ? {
    metrics: job.eval.generationMetrics, maxNewTokens: job.eval.generateMaxTokens, maxExamples: job.eval.generateMaxExamples,
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }), stopIds: [tok.eosTokenId].filter((x): x is number => x !== undefined),
  } : undefined;
  return { tok, data: prepared, labels: prepared.labels, padId, generation, modelConfig };
}

/** The base model's config.json, parsed and size-checked (InputErrors name the file and the key). */
export async function readModelConfig(job: CompiledJob): Promise<{ json: Record<string, unknown>; config: ModelConfig; file: string }> {
  const json = await readConfigJson(job.modelDir);
  const file = join(job.modelDir, 'config.json');
  return { json, config: configFromHF(json, file), file };
}

/**
 * An example longer than the model's positions has no position embedding (or rotary angle) for its
 * tail: found at the first long batch otherwise, after outputs were opened.
 */
function checkSeqLen(job: CompiledJob, cfg: ModelConfig, configFile: string): void {
  if (job.data.maxSeqLen <= cfg.maxPositions) return;
  throw new InputError(
    `${job.jobFile}: data.max_seq_len ${job.data.maxSeqLen} is larger than the model's ${cfg.maxPositions} positions ` +
    `(${configFile} ${hfKey(cfg.family, 'maxPositions')}); set data.max_seq_len to at most ${cfg.maxPositions}`,
  );
}

/**
 * How many eval examples an evaluation scores: all n, or with eval.max_batches the first
 * max_batches x micro_batch, the ones a single process scores in its first max_batches batches. A
 * distributed run cuts here, before sharding, so the union of the ranks' shards is exactly that set
 * (cutting each shard to max_batches / world batches instead scores other examples).
 */
export function evaluatedCount(job: CompiledJob, n: number): number {
  const b = job.eval.maxBatches;
  return b === undefined ? n : Math.min(n, b * job.training.microBatch);
}
