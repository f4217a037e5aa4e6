/**
 * The first building block of every recipe (single process, ring worker, eval, demo): the tokenizer
 * and the whole dataset, validated before any output is touched, plus what evaluation needs from them
 * (pad id, generation options). Writes nothing.
 */
import type { CompiledJob } from '../config/compile.ts';
import { prepareData, type PreparedData } from '../data/dataset.ts';
import { readConfigJson } from '../model/model-dir.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import type { GenerationOptions } from './evaluate.ts';

export interface PreparedRun {
  tok: Tokenizer;
  data: PreparedData;
  labels?: string[];
  padId: number;
  /** Options for generation metrics (eval.metrics bleu/rouge/exact_match), when asked for. */
  generation?: GenerationOptions;
}

export async function prepareRun(job: CompiledJob): Promise<PreparedRun> {
  const tok = await Tokenizer.fromDir(job.modelDir);
  const cfg = await readConfigJson(job.modelDir);
  const modelLabels = cfg.id2label ? Object.values(cfg.id2label as Record<string, string>) : undefined;
  const data = await prepareData(job, tok, job.task === 'classification' ? modelLabels : undefined);
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const generation: GenerationOptions | undefined = job.eval.generationMetrics.length ? {
    metrics: job.eval.generationMetrics, maxNewTokens: job.eval.generateMaxTokens, maxExamples: job.eval.generateMaxExamples,
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }), stopIds: [tok.eosTokenId].filter((x): x is number => x !== undefined),
  } : undefined;
  return { tok, data, labels: data.labels, padId, generation };
}
