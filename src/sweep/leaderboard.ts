/**
 * The leaderboard: one row per trial, best first, as the terminal table and sweep.html show it and
 * sweep-state.json records it. Order: trials that reached a later asha rung first (a metric after
 * more steps is not comparable with one after fewer), then by the metric (halving.ts rank: failed
 * trials and non-finite metrics last, ties to the lower trial number).
 */
import { byScore } from './halving.ts';
import type { CompiledSweep } from './sweep-spec.ts';
import type { Curves, EndEvent, SweepEvent, TrialStatus } from './sweep-log.ts';
import type { Params } from './space.ts';

export interface TrialRow {
  id: string;
  params: Params;
  status: TrialStatus;
  /** The last rung the trial ran (0 outside asha). */
  rung?: number;
  steps?: number;
  metric?: number;
  eval?: Record<string, number>;
  curve?: Curves;
  seconds?: number;
  error?: string;
}

/**
 * One row per trial from the sweep's events: its latest `end` (the highest rung it finished) gives
 * steps and metric; a rung started and not ended is `interrupted` (or `running`, those in flight);
 * `prunedAt(id, rung)` says whether asha stopped the trial after that rung.
 */
export function trialRows(ids: readonly string[], configs: readonly Params[], events: readonly SweepEvent[],
  running: ReadonlySet<string>, prunedAt: (id: string, rung: number) => boolean): TrialRow[] {
  return ids.map((id, i) => {
    const mine = events.filter((e): e is Exclude<SweepEvent, { event: 'promote' }> => e.event !== 'promote' && e.trial === id);
    const e = mine.filter((x): x is EndEvent => x.event === 'end').sort((x, y) => x.rung - y.rung).at(-1);
    const last = mine.at(-1);
    const status: TrialStatus = running.has(id) ? 'running'
      : last && last.event !== 'end' ? 'interrupted'
      : !e ? 'pending'
      : e.status === 'done' && prunedAt(id, e.rung) ? 'pruned' : e.status;
    if (!e) return { id, params: configs[i], status };
    return { id, params: configs[i], status, rung: e.rung, steps: e.steps, metric: e.metric, eval: e.eval, curve: e.curve, seconds: e.seconds, error: e.error };
  });
}

/** Best first (header). */
export function leaderboard(rows: readonly TrialRow[], mode: 'min' | 'max'): TrialRow[] {
  const ranked = (r: TrialRow) => ({ id: r.id, metric: r.status === 'failed' ? undefined : r.metric });
  return [...rows].sort((a, b) => (b.rung ?? -1) - (a.rung ?? -1) || byScore(mode)(ranked(a), ranked(b)));
}

/** The best finished trial: the leaderboard's first row when it is done (not failed, pending or pruned). */
export function bestTrial(board: readonly TrialRow[]): TrialRow | undefined {
  const first = board[0];
  return first?.status === 'done' && first.metric !== undefined && Number.isFinite(first.metric) ? first : undefined;
}

/** A value as tables show it: numbers to 4 significant digits (0.001, 3.793, 1e-7), strings bare. */
export const formatValue = (v: unknown): string =>
  typeof v === 'number' ? String(Number.isFinite(v) ? Number(v.toPrecision(4)) : v) : typeof v === 'string' ? v : v === undefined ? '-' : JSON.stringify(v);

/** The leaderboard as an aligned text table. */
export function leaderboardTable(sweep: Pick<CompiledSweep, 'metric' | 'mode' | 'space'>, board: readonly TrialRow[]): string {
  const head = ['#', 'trial', 'status', 'steps', `${sweep.metric} (${sweep.mode})`, ...sweep.space.map((f) => f.key)];
  const rows = board.map((r, i) => [
    String(i + 1), r.id, r.status, r.steps === undefined ? '-' : String(r.steps), r.metric === undefined ? '-' : formatValue(r.metric),
    ...sweep.space.map((f) => formatValue(r.params[f.key])),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((x, c) => x.padEnd(widths[c])).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
