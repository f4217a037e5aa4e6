/**
 * SQuAD v1.1 exact match and token F1, as the official evaluate-v1.1.py computes them:
 *   normalize(s) = white_space_fix(remove_articles(remove_punc(lower(s))))
 *     remove_punc: delete every character of Python's string.punctuation  !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
 *     remove_articles: \b(a|an|the)\b -> " "     white_space_fix: " ".join(s.split())
 *   EM = normalize(pred) == normalize(gold)
 *   F1: common = multiset intersection of the normalized tokens; 0 if empty, else
 *       P = common / #pred tokens, R = common / #gold tokens, F1 = 2PR / (P + R)
 *   per example: max over the gold answers; corpus: 100 * mean over examples.
 * v1.1 quirk kept on purpose: when both sides normalize to nothing, EM = 1 but F1 = 0 (the v2.0 script
 * changed this to 1). Python's \b is Unicode-aware, so the word boundary here is "not next to a Unicode
 * letter, digit or underscore" rather than JavaScript's ASCII \b.
 * State: example count, integer count of exact matches, exact sum (exact-sum.ts) of per-example F1.
 * Empty state: exactMatch and f1 are NaN.
 */
import { InputError } from '../errors.ts';
import { exactSumAdd, exactSumMerge, exactSumValue, isExactSum, type ExactSum } from './exact-sum.ts';
import { requireCount, type Metric } from './metric.ts';
import { pyLower, pySplit } from './py-text.ts';

export interface SquadInput {
  prediction: string;
  answers: readonly string[];
}

export interface SquadState {
  count: number;
  exactMatches: number;
  f1Sum: ExactSum;
}

export interface SquadResult {
  /** 0..100 */
  exactMatch: number;
  /** 0..100 */
  f1: number;
  count: number;
}

const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const ARTICLES = /(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu;

export function normalizeAnswer(s: string): string {
  const noPunc = [...pyLower(s)].filter((ch) => !PUNCTUATION.has(ch)).join('');
  return pySplit(noPunc.replace(ARTICLES, ' ')).join(' ');
}

export function squadExactMatch(prediction: string, gold: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(gold);
}

export function squadF1(prediction: string, gold: string): number {
  const pred = pySplit(normalizeAnswer(prediction));
  const truth = pySplit(normalizeAnswer(gold));
  const remaining = new Map<string, number>();
  for (const t of truth) remaining.set(t, (remaining.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of pred) {
    const left = remaining.get(t) ?? 0;
    if (left > 0) {
      common += 1;
      remaining.set(t, left - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / pred.length;
  const recall = common / truth.length;
  return (2 * precision * recall) / (precision + recall);
}

export function squadMetric(): Metric<SquadState, SquadInput, SquadResult> {
  return {
    name: 'squad',
    init: () => ({ count: 0, exactMatches: 0, f1Sum: [] }),
    update(state, { prediction, answers }) {
      if (typeof prediction !== 'string') throw new InputError('squad: prediction must be a string');
      if (!Array.isArray(answers) || answers.length === 0 || answers.some((a) => typeof a !== 'string')) {
        throw new InputError(`squad: prediction ${JSON.stringify(prediction.slice(0, 60))} needs at least one gold answer string`);
      }
      if (answers.some((a) => squadExactMatch(prediction, a))) state.exactMatches += 1;
      exactSumAdd(state.f1Sum, Math.max(...answers.map((a) => squadF1(prediction, a))));
      state.count += 1;
      return state;
    },
    merge(a, b) {
      if (!isExactSum(a.f1Sum) || !isExactSum(b.f1Sum)) throw new InputError('squad: state.f1Sum is not an exact sum');
      return {
        count: requireCount('squad', 'count', a.count + b.count),
        exactMatches: requireCount('squad', 'exactMatches', a.exactMatches + b.exactMatches),
        f1Sum: exactSumMerge(a.f1Sum, b.f1Sum),
      };
    },
    compute(state) {
      if (state.count === 0) return { exactMatch: NaN, f1: NaN, count: 0 };
      // evaluate-v1.1.py: 100.0 * total / count
      return { exactMatch: (100 * state.exactMatches) / state.count, f1: (100 * exactSumValue(state.f1Sum)) / state.count, count: state.count };
    },
  };
}
