/**
 * Token-level perplexity of a language model:
 *   meanNll = (sum over tokens of -ln p(token | context)) / tokens        (nats per token)
 *   perplexity = exp(meanNll)
 * Inputs are per-batch sums (what a loss function with reduction='sum' gives) and token counts, so
 * batches of different lengths weigh by their tokens, not equally. State: exact sum of NLL (exact-sum.ts)
 * and the integer token count, so merged states give the bit-identical result.
 * Empty state (no tokens): meanNll and perplexity are NaN.
 */
import { InputError } from '../errors.ts';
import { exactSumAdd, exactSumMerge, exactSumValue, isExactSum, type ExactSum } from './exact-sum.ts';
import { requireCount, type Metric } from './metric.ts';

export interface PerplexityInput {
  /** Sum of the tokens' negative log-likelihoods, natural log. */
  nllSum: number;
  tokens: number;
}

export interface PerplexityState {
  nllSum: ExactSum;
  tokens: number;
}

export interface PerplexityResult {
  meanNll: number;
  perplexity: number;
  tokens: number;
}

export function perplexityMetric(): Metric<PerplexityState, PerplexityInput, PerplexityResult> {
  return {
    name: 'perplexity',
    init: () => ({ nllSum: [], tokens: 0 }),
    update(state, { nllSum, tokens }) {
      requireCount('perplexity', 'tokens', tokens);
      if (typeof nllSum !== 'number' || !Number.isFinite(nllSum) || nllSum < 0) {
        throw new InputError(
          `perplexity: nllSum must be a finite sum of negative log-likelihoods (>= 0, nats), got ${String(nllSum)}`,
        );
      }
      if (tokens === 0 && nllSum !== 0) throw new InputError(`perplexity: nllSum ${nllSum} given for 0 tokens`);
      exactSumAdd(state.nllSum, nllSum);
      state.tokens += tokens;
      return state;
    },
    merge(a, b) {
      if (!isExactSum(a.nllSum) || !isExactSum(b.nllSum)) throw new InputError('perplexity: state.nllSum is not an exact sum');
      return { nllSum: exactSumMerge(a.nllSum, b.nllSum), tokens: requireCount('perplexity', 'tokens', a.tokens + b.tokens) };
    },
    compute(state) {
      const meanNll = state.tokens === 0 ? NaN : exactSumValue(state.nllSum) / state.tokens;
      return { meanNll, perplexity: Math.exp(meanNll), tokens: state.tokens };
    },
  };
}
