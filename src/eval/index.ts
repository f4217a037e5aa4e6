/**
 * Evaluation metrics by name. A job config names a metric ("f1", "bleu", ...) plus options; every
 * worker builds the same metric with `createMetric`, evaluates its shard into a state, sends the state as
 * JSON, and the coordinator folds the states with `mergeStates` and calls `compute` once.
 * The registry is data: name -> factory and the options it accepts. Several names can lead to one
 * metric ('accuracy', 'f1', 'precision', 'recall' all give the classification metric, whose result holds
 * all of them).
 */
import { InputError } from '../errors.ts';
import { bleuMetric, type BleuOptions } from './bleu.ts';
import { classificationMetric } from './classification.ts';
import type { Metric } from './metric.ts';
import { mrrMetric } from './mrr.ts';
import { perplexityMetric } from './perplexity.ts';
import { rougeMetric } from './rouge.ts';
import { squadMetric } from './squad.ts';

export { mergeStates, evaluate, type Metric } from './metric.ts';
export * from './classification.ts';
export * from './perplexity.ts';
export * from './bleu.ts';
export * from './rouge.ts';
export * from './squad.ts';
export * from './mrr.ts';
export { exactSumAdd, exactSumMerge, exactSumValue, type ExactSum } from './exact-sum.ts';
export { tokenize13a } from './tokenizer-13a.ts';

/** Any metric, states/inputs/results unknown to the caller (they are JSON-shaped). */
export type AnyMetric = Metric<unknown, unknown, unknown>;

type OptionType = 'number' | 'boolean' | 'string';

interface MetricEntry {
  readonly description: string;
  /** Accepted option names and their JSON types; required ones are listed in `required`. */
  readonly options: Readonly<Record<string, OptionType>>;
  readonly required?: readonly string[];
  create(options: Record<string, unknown>): AnyMetric;
}

const classification: MetricEntry = {
  description: 'accuracy, precision/recall/F1 (macro, micro, weighted, per class), confusion matrix',
  options: { numClasses: 'number' },
  required: ['numClasses'],
  create: (o) => classificationMetric({ numClasses: o.numClasses as number }),
};
const squad: MetricEntry = {
  description: 'SQuAD v1.1 exact match and token F1 (x100)',
  options: {},
  create: () => squadMetric(),
};

export const METRICS: Readonly<Record<string, MetricEntry>> = {
  classification,
  accuracy: classification,
  precision: classification,
  recall: classification,
  f1: classification,
  perplexity: { description: 'mean token NLL (nats) and exp of it', options: {}, create: () => perplexityMetric() },
  bleu: {
    description: 'corpus BLEU-4 as sacreBLEU (13a tokenizer, exp smoothing)',
    options: { tokenize: 'string', lowercase: 'boolean', smoothMethod: 'string', smoothValue: 'number', effectiveOrder: 'boolean', maxNgramOrder: 'number' },
    create: (o) => bleuMetric(o as BleuOptions),
  },
  rouge: { description: 'ROUGE-1/2/L precision, recall, F as rouge-score, mean over examples', options: {}, create: () => rougeMetric() },
  squad,
  exact_match: squad,
  mrr: { description: 'mean reciprocal rank of the first relevant item', options: { k: 'number' }, create: (o) => mrrMetric({ k: o.k as number | undefined }) },
};

/**
 * The metric registered under `name`, built with `options`. Unknown names and bad options are an
 * InputError that lists every problem and the valid choices.
 */
export function createMetric(name: string, options: Record<string, unknown> = {}): AnyMetric {
  const entry = Object.hasOwn(METRICS, name) ? METRICS[name] : undefined;
  if (!entry) {
    throw new InputError(`unknown metric ${JSON.stringify(name)}; valid metrics: ${Object.keys(METRICS).join(', ')}`);
  }
  const problems: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    const type = entry.options[key];
    if (!type) problems.push(`unknown option ${JSON.stringify(key)}`);
    else if (value !== undefined && typeof value !== type) problems.push(`option ${key} must be a ${type}, got ${JSON.stringify(value)}`);
  }
  for (const key of entry.required ?? []) if (options[key] === undefined) problems.push(`option ${key} is required`);
  if (problems.length > 0) {
    const accepted = Object.keys(entry.options).join(', ') || 'none';
    throw new InputError(`metric ${name}: ${problems.join('; ')} (accepted options: ${accepted})`);
  }
  return entry.create(options);
}
