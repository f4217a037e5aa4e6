/**
 * Step bookkeeping: StepReports arrive per rank; a step is complete when every rank reported it.
 * The completed step's global numbers (rank 0's loss and lr: every rank computed the same all-reduced
 * values), token and sample totals, throughput, timing spread and the parameter-hash verdict.
 */
import type { ControlMessages } from '../control/bus.ts';

type StepReport = ControlMessages['StepReport'];

export interface CompletedStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  count: number;
  tokens: number;
  samples: number;
  tokensPerSecond: number;
  workers: number;
  computeMs: number;
  /** The rank that arrives last waits least: min reduce time ~ the collective itself, max ~ plus skew. */
  reduceMsMin: number;
  reduceMs: number;
  /** Bytes each rank sent in the step's all-reduce (gradient-sized in full fine-tuning, adapter-sized with LoRA). */
  reduceBytes: number;
  /** Ranks by parameter hash on hash steps; more than one group means the replicas diverged. */
  hashGroups?: Map<string, number[]>;
}

export class StepBook {
  private pending = new Map<number, Map<number, StepReport>>();
  /** Every step up to this one is complete (what Control.alive acknowledges). */
  private through = 0;
  /** Complete steps above `through` (a report of an earlier step is still missing: lost, to be re-sent). */
  private ahead = new Set<number>();

  /**
   * The run (re)starts after `step` completed steps. `recorded`: steps above it already recorded (a
   * taking-over coordinator's metrics.jsonl with a hole below them): never completed twice, and
   * `contiguous` passes them once the hole is filled.
   */
  startAt(step: number, recorded: Iterable<number> = []): void {
    this.through = step;
    this.ahead = new Set([...recorded].filter((s) => s > step));
    this.advance();
  }

  private advance(): void {
    while (this.ahead.delete(this.through + 1)) this.through += 1;
  }

  /** The highest step such that it and every step before it are complete. */
  get contiguous(): number {
    return this.through;
  }

  /**
   * Adds one rank's report; returns the step once all `worldSize` ranks reported it. A report of a
   * step already complete (a re-send whose acknowledgement was late) returns undefined.
   */
  add(r: StepReport, worldSize: number): CompletedStep | undefined {
    if (r.step <= this.through || this.ahead.has(r.step)) return undefined;
    const at = this.pending.get(r.step) ?? new Map<number, StepReport>();
    this.pending.set(r.step, at.set(r.rank, r));
    if (at.size < worldSize) return undefined;
    this.pending.delete(r.step);
    this.ahead.add(r.step);
    this.advance();
    return summarize(r.step, at);
  }

  /** Steps up to `step`, not complete, of which no rank's report came (all lost on the way, or never sent). */
  unreported(step: number): number[] {
    const out: number[] = [];
    for (let s = this.through + 1; s <= step; s++) if (!this.ahead.has(s) && !this.pending.has(s)) out.push(s);
    return out;
  }

  /**
   * Elastic re-form at `step`: every step up to it counts as complete from now on. Returns the steps up
   * to it still waiting for reports (a lost rank's never came), summarized from the reports that did
   * arrive: the global numbers are in every rank's report; the token and sample totals are partial.
   * `missing`: the steps up to it of which no report came at all (they stay missing from the record).
   */
  completeThrough(step: number): { partial: CompletedStep[]; missing: number[] } {
    const partial = [...this.pending.keys()].filter((s) => s <= step).sort((a, b) => a - b)
      .map((s) => summarize(s, this.pending.get(s)!));
    const missing = this.unreported(step);
    for (const s of [...this.pending.keys()]) if (s <= step) this.pending.delete(s);
    this.startAt(Math.max(this.through, step), this.ahead);
    return { partial, missing };
  }
}

/** "4-6, 9" for [4, 5, 6, 9] (sorted steps). */
export function stepRanges(steps: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < steps.length; ) {
    let j = i;
    while (j + 1 < steps.length && steps[j + 1] === steps[j]! + 1) j++;
    out.push(i === j ? `${steps[i]}` : `${steps[i]}-${steps[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}

/** A step's numbers from the reports of it that arrived (every rank's, unless completeThrough). */
function summarize(step: number, at: Map<number, StepReport>): CompletedStep {
  const all = [...at.values()];
  const r0 = at.get(0) ?? all[0];
  const tokens = all.reduce((a, x) => a + x.inputTokens, 0);
  const seconds = Math.max(...all.map((x) => x.computeMs + x.reduceMs)) / 1000;
  let hashGroups: Map<string, number[]> | undefined;
  if (r0.paramHash) {
    hashGroups = new Map();
    for (const x of all) hashGroups.set(x.paramHash, [...(hashGroups.get(x.paramHash) ?? []), x.rank]);
  }
  return {
    step, loss: r0.loss, lr: r0.lr, gradNorm: r0.gradNorm, count: r0.count, tokens, samples: all.reduce((a, x) => a + x.samples, 0),
    tokensPerSecond: Math.round(tokens / seconds), workers: all.length,
    computeMs: Math.round(Math.max(...all.map((x) => x.computeMs))),
    reduceMsMin: Math.round(Math.min(...all.map((x) => x.reduceMs))), reduceMs: Math.round(Math.max(...all.map((x) => x.reduceMs))),
    reduceBytes: Math.max(...all.map((x) => x.reduceBytes)),
    hashGroups,
  };
}

/** "ranks 0,2: ab12...; ranks 1: cd34..." for a diverged hash check. */
export function describeHashGroups(groups: Map<string, number[]>): string {
  return [...groups].map(([h, ranks]) => `ranks ${ranks.join(',')}: ${h}`).join('; ');
}
