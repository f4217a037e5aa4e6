/**
 * Which examples each step uses, as a pure function of (seed, step): epoch e visits every example
 * exactly once in the order shuffle(seed, e); step s takes the next `globalBatch` of them (the last
 * batch of an epoch may be smaller). Resuming at step s or sharding across N ranks needs no state
 * beyond the step number: rank r takes its contiguous share of the step's examples.
 * The shuffle is index-level: the plan holds one epoch's permutation (4 bytes per example, a
 * Uint32Array) and never the examples, which a rank reads for its share of one step at a time
 * (data/example-store.ts).
 */
import { permutation } from '../data/shuffle.ts';
import { Rng } from '../util/rng.ts';

export class BatchPlan {
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  private cachedEpoch = -1;
  private cachedOrder: Uint32Array = new Uint32Array(0);

  constructor(
    readonly numExamples: number,
    readonly globalBatch: number,
    readonly seed: number,
    limits: { epochs?: number; maxSteps?: number },
  ) {
    this.stepsPerEpoch = Math.ceil(numExamples / globalBatch);
    this.totalSteps = limits.maxSteps ?? (limits.epochs ?? 1) * this.stepsPerEpoch;
  }

  epochOf(step: number): number {
    return Math.floor(step / this.stepsPerEpoch);
  }

  /** The epoch's permutation: seeded by (seed, epoch) so any epoch can be recreated alone. */
  order(epoch: number): number[] {
    return Array.from(this.epochOrder(epoch));
  }

  private epochOrder(epoch: number): Uint32Array {
    if (epoch !== this.cachedEpoch) {
      this.cachedOrder = permutation(new Rng((this.seed * 1_000_003 + epoch) >>> 0), this.numExamples);
      this.cachedEpoch = epoch;
    }
    return this.cachedOrder;
  }

  /** Global example indices of a step, in order. */
  stepExamples(step: number): number[] {
    const within = step % this.stepsPerEpoch;
    return Array.from(this.epochOrder(this.epochOf(step)).subarray(within * this.globalBatch, (within + 1) * this.globalBatch));
  }

  /** Rank r's contiguous share of a step's examples (sizes differ by at most one). */
  static shard<T>(items: readonly T[], rank: number, worldSize: number): T[] {
    return items.slice(...BatchPlan.shardBounds(items.length, rank, worldSize));
  }

  /** [start, end) of rank r's share of n items: what shard() slices, for sources read by range. */
  static shardBounds(n: number, rank: number, worldSize: number): [number, number] {
    return [Math.floor((rank * n) / worldSize), Math.floor(((rank + 1) * n) / worldSize)];
  }

  static chunks<T>(items: readonly T[], size: number): T[][] {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  }
}
