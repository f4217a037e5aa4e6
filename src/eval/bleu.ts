/**
 * Corpus BLEU (Papineni et al. 2002) exactly as sacreBLEU 2.x computes it with its defaults
 * (BLEU(): tokenize='13a', case-sensitive, smooth_method='exp', max order 4, effective_order=False);
 * source: sacrebleu/metrics/bleu.py and sacrebleu/metrics/base.py.
 *
 * Per segment (hypothesis + its references):
 *   - each string is rstrip()ed, optionally lowercased, tokenized ('13a' or 'none'), split on spaces;
 *   - empty reference strings are dropped (sacreBLEU's "variable number of references"); a segment with
 *     no reference left is an error, as in sacreBLEU;
 *   - correct[n] += sum over hypothesis n-grams g of min(count_hyp(g), max over refs count_ref(g));
 *     total[n] += number of hypothesis n-grams;  n = 1..4
 *   - sysLen += hypothesis length; refLen += the reference length closest to it (ties -> shorter).
 * State = those sums: integers, so merging states from many workers is exact.
 *
 * Corpus score (compute_bleu):
 *   BP = 1 if sysLen >= refLen, else exp(1 - refLen / sysLen) (0 when sysLen = 0)
 *   p_n = 100 correct_n / total_n; if correct_n = 0: 'exp' -> 100 / (2^k total_n) for the k-th such
 *   order, 'floor' -> 100 v / total_n, 'none' -> 0 (log 0 is floored to -9999999999);
 *   'add-k' adds v to correct_n and total_n for n >= 2. Stops at the first order with total_n = 0.
 *   BLEU = BP * exp(mean over orders of log p_n)  (in 0..100); 0 when no n-gram matches at all.
 * Empty state: 0, as sacreBLEU's compute_bleu returns for all-zero statistics.
 */
import { InputError } from '../errors.ts';
import { requireCount, requireSameLength, type Metric } from './metric.ts';
import { pyLower, pyRstrip, pySplit } from './py-text.ts';
import { tokenize13a, tokenizeNone } from './tokenizer-13a.ts';

export type BleuSmoothMethod = 'exp' | 'none' | 'floor' | 'add-k';

export interface BleuOptions {
  tokenize?: '13a' | 'none';
  lowercase?: boolean;
  smoothMethod?: BleuSmoothMethod;
  /** For 'floor' (default 0.1) and 'add-k' (default 1). */
  smoothValue?: number;
  /** Average only over orders the hypotheses reach (sacreBLEU's effective_order, for sentence BLEU). */
  effectiveOrder?: boolean;
  maxNgramOrder?: number;
}

export interface BleuInput {
  hypothesis: string;
  references: readonly string[];
}

export interface BleuState {
  /** Tokenization settings the counts were made with; merging refuses different ones. */
  signature: string;
  sysLen: number;
  refLen: number;
  /** (maxNgramOrder,) matched n-grams per order */
  correct: number[];
  /** (maxNgramOrder,) hypothesis n-grams per order */
  total: number[];
}

export interface BleuResult {
  score: number;
  counts: number[];
  totals: number[];
  precisions: number[];
  bp: number;
  ratio: number;
  sysLen: number;
  refLen: number;
}

const SMOOTH_DEFAULTS: Record<BleuSmoothMethod, number> = { exp: 0, none: 0, floor: 0.1, 'add-k': 1 };

/** sacreBLEU's my_log: log with log(0) floored to a very low number instead of -Infinity. */
const myLog = (x: number) => (x === 0 ? -9999999999 : Math.log(x));

/** BLEU from its sufficient statistics (sacreBLEU BLEU.compute_bleu). */
export function computeBleu(state: Omit<BleuState, 'signature'>, options: BleuOptions = {}): BleuResult {
  const method = options.smoothMethod ?? 'exp';
  const value = options.smoothValue ?? SMOOTH_DEFAULTS[method];
  const maxOrder = state.correct.length;
  const correct = state.correct.slice();
  const total = state.total.slice();
  const { sysLen, refLen } = state;
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(maxOrder).fill(0);
  const result = (score: number): BleuResult => ({
    score, counts: correct, totals: total, precisions, bp, ratio: refLen ? sysLen / refLen : 0, sysLen, refLen,
  });
  if (!correct.some((c) => c !== 0)) return result(0); // sacreBLEU #141: no matches -> 0

  let smoothMteval = 1;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (method === 'add-k' && n > 1) {
      correct[n - 1] += value;
      total[n - 1] += value;
    }
    if (total[n - 1] === 0) break;
    if (options.effectiveOrder) effOrder = n;
    if (correct[n - 1] === 0) {
      if (method === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * total[n - 1]);
      } else if (method === 'floor') {
        precisions[n - 1] = (100 * value) / total[n - 1];
      }
    } else {
      precisions[n - 1] = (100 * correct[n - 1]) / total[n - 1];
    }
  }
  let logSum = 0;
  for (const p of precisions.slice(0, effOrder)) logSum += myLog(p);
  return result(bp * Math.exp(logSum / effOrder));
}

/** (maxOrder,) maps: counts[n - 1] counts every n-gram, keyed by its space-joined tokens. */
function ngramCounts(tokens: string[], maxOrder: number): Map<string, number>[] {
  const counts: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const g = tokens.slice(i, i + n).join(' ');
      m.set(g, (m.get(g) ?? 0) + 1);
    }
    counts.push(m);
  }
  return counts;
}

/** The reference length closest to the hypothesis length; ties go to the shorter reference. */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let closestDiff = -1;
  let closestLen = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypLen - len);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closestLen = len;
    } else if (diff === closestDiff && len < closestLen) {
      closestLen = len;
    }
  }
  return closestLen;
}

export function bleuMetric(options: BleuOptions = {}): Metric<BleuState, BleuInput, BleuResult> {
  const tok = options.tokenize ?? '13a';
  const lowercase = options.lowercase ?? false;
  const maxOrder = options.maxNgramOrder ?? 4;
  const problems: string[] = [];
  if (tok !== '13a' && tok !== 'none') problems.push(`tokenize must be '13a' or 'none', got ${JSON.stringify(tok)}`);
  if (!Number.isInteger(maxOrder) || maxOrder < 1) problems.push(`maxNgramOrder must be a positive integer, got ${maxOrder}`);
  const method = options.smoothMethod ?? 'exp';
  if (!Object.hasOwn(SMOOTH_DEFAULTS, method)) problems.push(`smoothMethod must be one of ${Object.keys(SMOOTH_DEFAULTS).join(', ')}, got ${JSON.stringify(method)}`);
  if (problems.length > 0) throw new InputError(`bleu options: ${problems.join('; ')}`);

  const tokenizer = tok === '13a' ? tokenize13a : tokenizeNone;
  const preprocess = (s: string) => pySplit(tokenizer(lowercase ? pyLower(pyRstrip(s)) : pyRstrip(s)));
  const signature = `tok:${tok}|case:${lowercase ? 'lc' : 'mixed'}|order:${maxOrder}`;

  return {
    name: 'bleu',
    init: () => ({ signature, sysLen: 0, refLen: 0, correct: new Array(maxOrder).fill(0), total: new Array(maxOrder).fill(0) }),
    update(state, { hypothesis, references }) {
      if (typeof hypothesis !== 'string') throw new InputError('bleu: hypothesis must be a string');
      if (!Array.isArray(references)) throw new InputError('bleu: references must be an array of strings');
      const refs = references.filter((r) => r !== '' && r !== null && r !== undefined);
      if (refs.length === 0) {
        throw new InputError(
          `bleu: hypothesis ${JSON.stringify(hypothesis.slice(0, 60))} has no non-empty reference; ` +
            'give at least one reference per hypothesis (empty strings are ignored, as in sacreBLEU)',
        );
      }
      // Clip counts: each n-gram's count is the max over the references (sacreBLEU _extract_reference_info).
      const refMax = Array.from({ length: maxOrder }, () => new Map<string, number>());
      const refLens: number[] = [];
      for (const ref of refs) {
        if (typeof ref !== 'string') throw new InputError('bleu: every reference must be a string');
        const tokens = preprocess(ref);
        refLens.push(tokens.length);
        ngramCounts(tokens, maxOrder).forEach((m, n) => {
          for (const [g, c] of m) refMax[n].set(g, Math.max(refMax[n].get(g) ?? 0, c));
        });
      }
      const hyp = preprocess(hypothesis);
      ngramCounts(hyp, maxOrder).forEach((m, n) => {
        for (const [g, c] of m) {
          state.total[n] += c;
          state.correct[n] += Math.min(c, refMax[n].get(g) ?? 0);
        }
      });
      state.sysLen += hyp.length;
      state.refLen += closestRefLen(hyp.length, refLens);
      return state;
    },
    merge(a, b) {
      if (a.signature !== b.signature) {
        throw new InputError(`bleu: cannot merge states made with different settings (${a.signature} vs ${b.signature})`);
      }
      requireSameLength('bleu', 'n-gram orders', a.correct, b.correct);
      requireSameLength('bleu', 'n-gram orders', a.total, b.total);
      const add = (x: number[], y: number[]) => x.map((v, i) => requireCount('bleu', 'n-gram count', v + y[i]));
      return {
        signature: a.signature,
        sysLen: requireCount('bleu', 'sysLen', a.sysLen + b.sysLen),
        refLen: requireCount('bleu', 'refLen', a.refLen + b.refLen),
        correct: add(a.correct, b.correct),
        total: add(a.total, b.total),
      };
    },
    compute: (state) => computeBleu(state, options),
  };
}
