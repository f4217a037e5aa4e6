/**
 * The metric registry: every name a job may list in `eval.metrics`, what it needs (task, data
 * format), the result keys it adds to an evaluation, and, for generation metrics, how one
 * (generated text, reference text) pair feeds it. config/compile.ts validates job names here,
 * eval-state.ts builds and merges states from here; no other file lists metric names.
 *
 * Loss and classification numbers are always computed for their task; listing them only documents
 * intent. Generation metrics cost a greedy decode per example and run only when listed.
 */
import { InputError } from '../errors.ts';
import type { Task } from '../model/config.ts';
import { bleuMetric, type BleuResult } from './bleu.ts';
import type { Metric } from './metric.ts';
import { rougeMetric, type RougeResult } from './rouge.ts';
import { squadMetric, type SquadResult } from './squad.ts';

export { mergeStates, evaluate, type Metric } from './metric.ts';
export * from './classification.ts';
export * from './perplexity.ts';
export * from './bleu.ts';
export * from './rouge.ts';
export * from './squad.ts';
export { exactSumAdd, exactSumMerge, exactSumValue, type ExactSum } from './exact-sum.ts';
export { tokenize13a } from './tokenizer-13a.ts';

/** Any metric, states/inputs/results unknown to the caller (they are JSON-shaped). */
export type AnyMetric = Metric<unknown, unknown, unknown>;

/** Data formats whose examples have a prompt and a reference completion to generate against. */
const PROMPTED_FORMATS = ['prompt-completion', 'messages'] as const;

interface BaseEntry {
  readonly description: string;
  readonly tasks: readonly Task[];
}

interface LossEntry extends BaseEntry {
  readonly kind: 'loss';
}

interface ClassificationEntry extends BaseEntry {
  readonly kind: 'classification';
}

export interface GenerationEntry extends BaseEntry {
  readonly kind: 'generation';
  /** The data formats it can run on (it needs a prompt and a reference). */
  readonly formats: readonly string[];
  /** A fresh metric; states from it merge exactly (see metric.ts). */
  create(): AnyMetric;
  input(hypothesis: string, reference: string): unknown;
  /** The metric's result as the flat numbers of an evaluation. */
  results(r: unknown): Record<string, number>;
}

export type MetricEntry = LossEntry | ClassificationEntry | GenerationEntry;

const loss: LossEntry = { kind: 'loss', tasks: ['causal-lm', 'classification'], description: 'mean token NLL (causal LM) or mean cross-entropy per example (classification)' };
const classification: ClassificationEntry = {
  kind: 'classification', tasks: ['classification'], description: 'accuracy, macro precision/recall/F1 and micro F1 (sklearn conventions)',
};

/** Result keys per kind and task: what `eval.early_stopping.metric` may name. */
const LOSS_KEYS: Record<Task, readonly string[]> = { 'causal-lm': ['loss', 'perplexity', 'tokens'], classification: ['loss', 'examples'] };
const CLASSIFICATION_KEYS = ['accuracy', 'f1_macro', 'precision_macro', 'recall_macro', 'f1_micro'] as const;

const generation = <R>(description: string, create: () => Metric<unknown, unknown, R>, input: GenerationEntry['input'], results: (r: R) => Record<string, number>, keys: readonly string[]): GenerationEntry & { keys: readonly string[] } => ({
  kind: 'generation', tasks: ['causal-lm'], formats: PROMPTED_FORMATS, description, create: create as () => AnyMetric, input, results: results as GenerationEntry['results'], keys,
});

const GENERATION = {
  bleu: generation('corpus BLEU-4 as sacreBLEU (13a tokenizer, exp smoothing)', bleuMetric as () => Metric<unknown, unknown, BleuResult>,
    (hypothesis, reference) => ({ hypothesis, references: [reference] }), (r) => ({ bleu: r.score }), ['bleu']),
  rouge: generation('ROUGE-1/2/L F-measure as rouge-score, mean over examples', rougeMetric as () => Metric<unknown, unknown, RougeResult>,
    (prediction, reference) => ({ prediction, references: [reference] }),
    (r) => ({ rouge1: r.rouge1.fmeasure, rouge2: r.rouge2.fmeasure, rougeL: r.rougeL.fmeasure, generated: r.count }), ['rouge1', 'rouge2', 'rougeL', 'generated']),
  exact_match: generation('SQuAD v1.1 exact match and token F1 (x100)', squadMetric as () => Metric<unknown, unknown, SquadResult>,
    (prediction, reference) => ({ prediction, answers: [reference] }),
    (r) => ({ exact_match: r.exactMatch, token_f1: r.f1, generated: r.count }), ['exact_match', 'token_f1', 'generated']),
};

export type GenerationMetric = keyof typeof GENERATION;
export const GENERATION_METRICS = Object.keys(GENERATION) as GenerationMetric[];

export const METRICS: Readonly<Record<string, MetricEntry>> = {
  loss,
  perplexity: { ...loss, tasks: ['causal-lm'], description: 'exp of the mean token NLL' },
  accuracy: classification,
  precision: classification,
  recall: classification,
  f1: classification,
  ...GENERATION,
};

export function generationEntry(name: GenerationMetric): GenerationEntry {
  return GENERATION[name];
}

/**
 * Validates `eval.metrics` of a job against the registry: known names, each allowed for the task
 * and data format. Returns the generation metrics among them (the ones that change what runs).
 * Every problem is one line of the InputError.
 */
export function checkMetricNames(names: readonly string[] | undefined, task: Task, format: string): GenerationMetric[] {
  const problems: string[] = [];
  const unknown = (names ?? []).filter((n) => !Object.hasOwn(METRICS, n));
  if (unknown.length) problems.push(`eval.metrics: unknown ${unknown.join(', ')}; valid: ${Object.keys(METRICS).join(', ')}`);
  const known = (names ?? []).filter((n) => Object.hasOwn(METRICS, n));
  const gen = known.filter((n): n is GenerationMetric => METRICS[n].kind === 'generation');
  const wrongTask = known.filter((n) => METRICS[n].kind !== 'generation' && !METRICS[n].tasks.includes(task));
  if (wrongTask.length) problems.push(`eval.metrics: ${wrongTask.join(', ')} ${wrongTask.length === 1 ? 'is' : 'are'} not computed for task ${task}`);
  if (gen.length && (task !== 'causal-lm' || !(PROMPTED_FORMATS as readonly string[]).includes(format))) {
    problems.push(`eval.metrics: ${gen.join(', ')} need task causal-lm with format ${PROMPTED_FORMATS.join(' or ')} (got ${task}, ${format})`);
  }
  if (problems.length) throw new InputError(problems.join('\n  '));
  return gen;
}

/** The keys an evaluation of this task with these generation metrics produces. */
export function resultKeys(task: Task, generationMetrics: readonly GenerationMetric[]): string[] {
  const keys = [...LOSS_KEYS[task], ...(task === 'classification' ? CLASSIFICATION_KEYS : [])];
  for (const m of generationMetrics) keys.push(...GENERATION[m].keys);
  return [...new Set(keys)];
}
