/**
 * The numbers `ringtune ratings import` reports, on plain arrays (no I/O):
 *   meanInterval  mean +- Student-t 95% interval of a model's per-sample scores
 *   winRates      pairwise win rates of two models over the prompts both were rated on
 * The unit of both is the sample (one completion): its score is the mean over the raters who rated
 * it, so a sample three people rated counts once, not three times (their ratings are not
 * independent draws). Krippendorff's alpha (krippendorff.ts) uses the individual ratings.
 */
import { tCritical } from './student-t.ts';

export interface MeanInterval {
  /** Samples with a score. */
  n: number;
  mean: number | null;
  /** Sample standard deviation (n - 1 in the denominator); null for n < 2. */
  sd: number | null;
  /** mean -+ t_{0.975, n-1} * sd / sqrt(n); null for n < 2 (no spread to estimate). */
  low: number | null;
  high: number | null;
}

/** Two-sided `level` (default 0.95) Student-t interval of the mean of `xs`. */
export function meanInterval(xs: readonly number[], level = 0.95): MeanInterval {
  const n = xs.length;
  if (n === 0) return { n, mean: null, sd: null, low: null, high: null };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, sd: null, low: null, high: null };
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = tCritical(1 - level, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, low: mean - half, high: mean + half };
}

export interface WinRate {
  /** Prompts on which both models' samples have a score. */
  prompts: number;
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties / 2) / prompts for the first model; null when no prompt is shared. */
  rate: number | null;
}

/**
 * Model A against model B: per prompt, A wins when its sample's score is higher, ties count half.
 * `a` and `b` map a prompt index to that model's sample score.
 */
export function winRate(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): WinRate {
  let wins = 0, ties = 0, losses = 0;
  for (const [prompt, sa] of a) {
    const sb = b.get(prompt);
    if (sb === undefined) continue;
    if (sa > sb) wins++; else if (sa < sb) losses++; else ties++;
  }
  const prompts = wins + ties + losses;
  return { prompts, wins, ties, losses, rate: prompts === 0 ? null : (wins + ties / 2) / prompts };
}
