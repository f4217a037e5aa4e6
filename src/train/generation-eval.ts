/**
 * Generation metrics for prompt-completion (and chat) evaluation sets: greedy completions of each
 * example's prompt, scored against its reference completion with corpus BLEU (sacreBLEU), ROUGE
 * (rouge-score) and SQuAD exact match / token F1. States are the src/eval mergeable states, so every
 * rank scores its shard and the coordinator adds them up exactly.
 * The prompt is everything before the first loss token; the reference is the first run of loss tokens.
 */
import type { LmExample } from '../data/examples.ts';
import { InputError } from '../errors.ts';
import { bleuMetric, type BleuState } from '../eval/bleu.ts';
import { rougeMetric, type RougeState } from '../eval/rouge.ts';
import { squadMetric, type SquadState } from '../eval/squad.ts';
import { generate } from '../model/generate.ts';
import type { Model } from '../model/model.ts';

export const GENERATION_METRICS = ['bleu', 'rouge', 'exact_match'] as const;
export type GenerationMetric = (typeof GENERATION_METRICS)[number];

export interface GenerationStates {
  bleu?: BleuState;
  rouge?: RougeState;
  exact_match?: SquadState;
}

export interface GenerationOptions {
  metrics: readonly GenerationMetric[];
  maxNewTokens: number;
  maxExamples: number;
  decode: (ids: number[]) => string;
  stopIds: number[];
}

const METRIC = { bleu: bleuMetric(), rouge: rougeMetric(), exact_match: squadMetric() };

/** Prompt tokens and reference text of an example; undefined when it has no prompt (plain text). */
function split(ex: LmExample, decode: (ids: number[]) => string): { prompt: number[]; reference: string } | undefined {
  const first = ex.lossMask.indexOf(1);
  if (first <= 0) return undefined;
  let end = first;
  while (end < ex.tokens.length && ex.lossMask[end] === 1) end++;
  return { prompt: ex.tokens.slice(0, first), reference: decode(ex.tokens.slice(first, end)).trim() };
}

export async function generationStates(model: Model, examples: readonly LmExample[], o: GenerationOptions): Promise<GenerationStates> {
  const states: GenerationStates = {};
  for (const m of o.metrics) (states as Record<string, unknown>)[m] = METRIC[m].init();
  let used = 0;
  for (const ex of examples) {
    if (used >= o.maxExamples) break;
    const parts = split(ex, o.decode);
    if (!parts || parts.prompt.length >= model.config.maxPositions) continue;
    used++;
    const g = await generate(model, parts.prompt, { maxNewTokens: o.maxNewTokens, stopIds: o.stopIds });
    const hypothesis = o.decode(g.ids).trim();
    if (states.bleu) METRIC.bleu.update(states.bleu, { hypothesis, references: [parts.reference] });
    if (states.rouge) METRIC.rouge.update(states.rouge, { prediction: hypothesis, references: [parts.reference] });
    if (states.exact_match) METRIC.exact_match.update(states.exact_match, { prediction: hypothesis, answers: [parts.reference] });
  }
  return states;
}

export function mergeGenerationStates(a: GenerationStates, b: GenerationStates): GenerationStates {
  const out: GenerationStates = {};
  if (a.bleu && b.bleu) out.bleu = METRIC.bleu.merge(a.bleu, b.bleu);
  if (a.rouge && b.rouge) out.rouge = METRIC.rouge.merge(a.rouge, b.rouge);
  if (a.exact_match && b.exact_match) out.exact_match = METRIC.exact_match.merge(a.exact_match, b.exact_match);
  return out;
}

export function generationResults(s: GenerationStates): Record<string, number> {
  const out: Record<string, number> = {};
  if (s.bleu) out.bleu = METRIC.bleu.compute(s.bleu).score;
  if (s.rouge) {
    const r = METRIC.rouge.compute(s.rouge);
    Object.assign(out, { rouge1: r.rouge1.fmeasure, rouge2: r.rouge2.fmeasure, rougeL: r.rougeL.fmeasure, generated: r.count });
  }
  if (s.exact_match) {
    const r = METRIC.exact_match.compute(s.exact_match);
    Object.assign(out, { exact_match: r.exactMatch, token_f1: r.f1, generated: r.count });
  }
  return out;
}

/** Validates eval.metrics for a job: generation metrics need a causal LM with prompts. */
export function checkGenerationMetrics(names: readonly string[] | undefined, task: string, format: string): GenerationMetric[] {
  const known = new Set<string>(['loss', 'perplexity', 'accuracy', 'f1', 'precision', 'recall', ...GENERATION_METRICS]);
  const unknown = (names ?? []).filter((n) => !known.has(n));
  if (unknown.length) throw new InputError(`eval.metrics: unknown ${unknown.join(', ')}; valid: ${[...known].join(', ')}`);
  const gen = (names ?? []).filter((n): n is GenerationMetric => (GENERATION_METRICS as readonly string[]).includes(n));
  if (gen.length && (task !== 'causal-lm' || (format !== 'prompt-completion' && format !== 'messages'))) {
    throw new InputError(`eval.metrics: ${gen.join(', ')} need task causal-lm with format prompt-completion or messages (got ${task}, ${format})`);
  }
  return gen;
}
