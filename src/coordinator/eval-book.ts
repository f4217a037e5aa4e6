/**
 * Evaluation bookkeeping: each rank sends the EvalState of its eval shard for a step; when every
 * rank has, the states are merged in rank order (exact sums: the order does not change a bit) into
 * the result a single process would have computed.
 */
import { evalResult, mergeEvalStates, type EvalResult, type EvalState } from '../eval/eval-state.ts';

export class EvalBook {
  private pending = new Map<number, Map<number, EvalState>>();

  /** Adds one rank's state for `step`; returns the merged state and its result once all `worldSize` ranks sent theirs. */
  add(step: number, rank: number, state: EvalState, worldSize: number): { result: EvalResult; state: EvalState } | undefined {
    const at = this.pending.get(step) ?? new Map<number, EvalState>();
    this.pending.set(step, at.set(rank, state));
    if (at.size < worldSize) return undefined;
    this.pending.delete(step);
    const merged = [...at.keys()].sort((a, b) => a - b).map((k) => at.get(k)!).reduce(mergeEvalStates);
    return { result: evalResult(merged), state: merged };
  }
}
