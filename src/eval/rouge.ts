/**
 * ROUGE-1, ROUGE-2 and ROUGE-L (Lin 2004) as Google's rouge-score package computes them with its
 * defaults (RougeScorer(['rouge1', 'rouge2', 'rougeL']), no stemmer; rouge_score/rouge_scorer.py,
 * tokenize.py, scoring.py):
 *   tokens = lower(text), every run of characters outside [a-z0-9] -> " ", split, drop empty tokens
 *   ROUGE-N: overlap = sum over target n-grams g of min(count_target(g), count_pred(g))
 *            P = overlap / max(#pred n-grams, 1),  R = overlap / max(#target n-grams, 1)
 *   ROUGE-L: l = length of the longest common subsequence; P = l / #pred, R = l / #target
 *            (0 when either side has no tokens)
 *   F = 2PR / (P + R), 0 when P + R = 0
 * With several references, each ROUGE type takes the reference with the highest F, first on ties
 * (RougeScorer.score_multi).
 *
 * Corpus value: the mean over examples of the per-example P, R and F (what averaging rouge-score's
 * per-example scores gives; its BootstrapAggregator's "mid" is a random bootstrap estimate of this mean).
 * State: the number of examples and exact sums (exact-sum.ts) of per-example P/R/F, so merged states give
 * the bit-identical mean. Empty state: every value is NaN.
 */
import { InputError } from '../errors.ts';
import { exactSumAdd, exactSumMerge, exactSumValue, isExactSum, type ExactSum } from './exact-sum.ts';
import { requireCount, type Metric } from './metric.ts';
import { pyLower } from './py-text.ts';

export const ROUGE_TYPES = ['rouge1', 'rouge2', 'rougeL'] as const;
export type RougeType = (typeof ROUGE_TYPES)[number];

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export interface RougeInput {
  prediction: string;
  references: readonly string[];
}

export interface RougeState {
  count: number;
  /** Exact sums of per-example scores. */
  sums: Record<RougeType, { precision: ExactSum; recall: ExactSum; fmeasure: ExactSum }>;
}

export type RougeResult = Record<RougeType, RougeScore> & { count: number };

/** rouge-score's DefaultTokenizer without stemming. */
export function rougeTokenize(text: string): string[] {
  return pyLower(text)
    .replace(/[^a-z0-9]+/g, ' ')
    .split(/\s+/)
    .filter((t) => /^[a-z0-9]+$/.test(t));
}

const fmeasure = (p: number, r: number) => (p + r > 0 ? (2 * p * r) / (p + r) : 0);

function ngramCounts(tokens: string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const g = tokens.slice(i, i + n).join(' ');
    counts.set(g, (counts.get(g) ?? 0) + 1);
  }
  return counts;
}

function scoreNgrams(target: string[], prediction: string[], n: number): RougeScore {
  const t = ngramCounts(target, n);
  const p = ngramCounts(prediction, n);
  let overlap = 0;
  for (const [g, c] of t) overlap += Math.min(c, p.get(g) ?? 0);
  const precision = overlap / Math.max(prediction.length - n + 1, 1);
  const recall = overlap / Math.max(target.length - n + 1, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Length of the longest common subsequence, O(|a| |b|) time, O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

function scoreLcs(target: string[], prediction: string[]): RougeScore {
  if (target.length === 0 || prediction.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const l = lcsLength(target, prediction);
  const precision = l / prediction.length;
  const recall = l / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** rouge-score's RougeScorer.score_multi for one example: per type, the best reference by F. */
export function rougeScoreExample(prediction: string, references: readonly string[]): Record<RougeType, RougeScore> {
  const pred = rougeTokenize(prediction);
  const perRef = references.map((ref) => {
    const target = rougeTokenize(ref);
    return { rouge1: scoreNgrams(target, pred, 1), rouge2: scoreNgrams(target, pred, 2), rougeL: scoreLcs(target, pred) };
  });
  const best = (type: RougeType) => perRef.reduce((b, s) => (s[type].fmeasure > b[type].fmeasure ? s : b))[type];
  return { rouge1: best('rouge1'), rouge2: best('rouge2'), rougeL: best('rougeL') };
}

const emptySums = (): RougeState['sums'] => ({
  rouge1: { precision: [], recall: [], fmeasure: [] },
  rouge2: { precision: [], recall: [], fmeasure: [] },
  rougeL: { precision: [], recall: [], fmeasure: [] },
});

export function rougeMetric(): Metric<RougeState, RougeInput, RougeResult> {
  return {
    name: 'rouge',
    init: () => ({ count: 0, sums: emptySums() }),
    update(state, { prediction, references }) {
      if (typeof prediction !== 'string') throw new InputError('rouge: prediction must be a string');
      if (!Array.isArray(references) || references.length === 0 || references.some((r) => typeof r !== 'string')) {
        throw new InputError(`rouge: prediction ${JSON.stringify(prediction.slice(0, 60))} needs at least one reference string`);
      }
      const scores = rougeScoreExample(prediction, references);
      for (const type of ROUGE_TYPES) {
        const s = state.sums[type];
        exactSumAdd(s.precision, scores[type].precision);
        exactSumAdd(s.recall, scores[type].recall);
        exactSumAdd(s.fmeasure, scores[type].fmeasure);
      }
      state.count += 1;
      return state;
    },
    merge(a, b) {
      const sums = emptySums();
      for (const type of ROUGE_TYPES) {
        for (const key of ['precision', 'recall', 'fmeasure'] as const) {
          const x = a.sums?.[type]?.[key];
          const y = b.sums?.[type]?.[key];
          if (!isExactSum(x) || !isExactSum(y)) throw new InputError(`rouge: state is missing sums.${type}.${key}`);
          sums[type][key] = exactSumMerge(x, y);
        }
      }
      return { count: requireCount('rouge', 'count', a.count + b.count), sums };
    },
    compute(state) {
      const mean = (s: ExactSum) => (state.count === 0 ? NaN : exactSumValue(s) / state.count);
      const out = { count: state.count } as RougeResult;
      for (const type of ROUGE_TYPES) {
        const s = state.sums[type];
        out[type] = { precision: mean(s.precision), recall: mean(s.recall), fmeasure: mean(s.fmeasure) };
      }
      return out;
    },
  };
}
