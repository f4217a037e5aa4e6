/**
 * Mean reciprocal rank (Voorhees, TREC-8 QA track 1999):
 *   MRR = (1 / |Q|) sum over queries q of 1 / rank_q
 * where rank_q is the 1-based position of the first relevant item in q's ranked list, and the term is 0
 * when no relevant item appears (or none within the first k when a cutoff k is set: MRR@k).
 * State: the number of queries and how many queries had their first relevant item at each rank
 * ({ "1": 40, "3": 7 }). Those are integer counts, and compute() sums count / rank in increasing rank
 * order, so the result does not depend on how the queries were split or merged — not even in the last bit.
 * Also reported: hitRate = fraction of queries with a relevant item (within k).
 * Empty state: mrr and hitRate are NaN.
 */
import { InputError } from '../errors.ts';
import { requireCount, type Metric } from './metric.ts';

export type RankedItem = string | number;

export interface MrrOptions {
  /** Only the first k ranked items count (MRR@k). Default: the whole list. */
  k?: number;
}

export interface MrrInput {
  /** Items in ranked order, best first. */
  ranked: readonly RankedItem[];
  /** The items that count as relevant for this query. */
  relevant: readonly RankedItem[];
}

export interface MrrState {
  count: number;
  /** rank (1-based, as a decimal string key) -> number of queries whose first relevant item is there */
  firstRelevantRank: Record<string, number>;
}

export interface MrrResult {
  mrr: number;
  hitRate: number;
  count: number;
}

/** 1-based rank of the first relevant item, 0 when there is none within the first k. */
export function firstRelevantRank(ranked: readonly RankedItem[], relevant: readonly RankedItem[], k = Infinity): number {
  const rel = new Set(relevant);
  const limit = Math.min(ranked.length, k);
  for (let i = 0; i < limit; i++) if (rel.has(ranked[i])) return i + 1;
  return 0;
}

export function mrrMetric(options: MrrOptions = {}): Metric<MrrState, MrrInput, MrrResult> {
  const k = options.k ?? Infinity;
  if (k !== Infinity && (!Number.isInteger(k) || k < 1)) throw new InputError(`mrr: k must be a positive integer, got ${k}`);
  return {
    name: 'mrr',
    init: () => ({ count: 0, firstRelevantRank: {} }),
    update(state, { ranked, relevant }) {
      if (!Array.isArray(ranked) || !Array.isArray(relevant)) {
        throw new InputError('mrr: each input needs `ranked` and `relevant` arrays of item ids');
      }
      const rank = firstRelevantRank(ranked, relevant, k);
      if (rank > 0) state.firstRelevantRank[rank] = (state.firstRelevantRank[rank] ?? 0) + 1;
      state.count += 1;
      return state;
    },
    merge(a, b) {
      const merged: Record<string, number> = {};
      for (const src of [a.firstRelevantRank, b.firstRelevantRank]) {
        if (typeof src !== 'object' || src === null) throw new InputError('mrr: state.firstRelevantRank is not an object');
        for (const [rank, n] of Object.entries(src)) {
          if (!(Number.isInteger(Number(rank)) && Number(rank) >= 1)) throw new InputError(`mrr: rank key ${JSON.stringify(rank)} is not a rank >= 1`);
          merged[rank] = requireCount('mrr', `count at rank ${rank}`, (merged[rank] ?? 0) + n);
        }
      }
      return { count: requireCount('mrr', 'count', a.count + b.count), firstRelevantRank: merged };
    },
    compute(state) {
      if (state.count === 0) return { mrr: NaN, hitRate: NaN, count: 0 };
      const ranks = Object.keys(state.firstRelevantRank).map(Number).sort((x, y) => x - y);
      let sum = 0;
      let hits = 0;
      for (const r of ranks) {
        const n = state.firstRelevantRank[r];
        sum += n / r;
        hits += n;
      }
      return { mrr: sum / state.count, hitRate: hits / state.count, count: state.count };
    },
  };
}
