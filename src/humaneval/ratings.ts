/**
 * Un-blinding and summary: ratings (sheet.ts) + key -> per model and criterion the mean score with a
 * 95% Student-t interval, pairwise win rates per prompt, and inter-rater agreement.
 *   sample score   the mean of the raters' scores of one sample (one completion), per criterion
 *   mean +- CI     over a model's sample scores: t interval, n - 1 degrees of freedom (stats.ts)
 *   win rate       model A vs B per criterion: over prompts where both have a sample score, A wins
 *                  when its score is higher; ties count half: (wins + ties / 2) / prompts
 *   agreement      Krippendorff's alpha, ordinal metric, per criterion: units = samples, coders =
 *                  raters, values = the individual scores (krippendorff.ts); needs two raters on a sample
 */
import type { SampleKey } from './key.ts';
import { krippendorffAlpha } from './krippendorff.ts';
import type { Rating } from './sheet.ts';
import { meanInterval, winRate, type MeanInterval, type WinRate } from './stats.ts';

export const RATINGS_FORMAT = 'ringtune-ratings/1';

export interface ModelScores {
  model: string;
  /** The model's source, as key.json records it. */
  dir: string;
  adapter: string | null;
  /** Criterion -> mean +- CI over the model's sample scores, and how many individual ratings went in. */
  criteria: Record<string, MeanInterval & { ratings: number }>;
}

export interface PairwiseWin extends WinRate {
  criterion: string;
  /** `rate` is model a's win rate against model b (b's is 1 - rate). */
  a: string;
  b: string;
}

export interface Agreement {
  criterion: string;
  metric: 'ordinal';
  alpha: number | null;
  /** Samples rated by two raters or more, and the ratings in them. */
  pairableUnits: number;
  pairableValues: number;
}

/** A rater's comment on a sample, un-blinded. */
export interface RatingComment {
  id: string;
  model: string;
  /** The prompt's id in key.json (its "id" in the prompts file, else its line number). */
  prompt: string | number;
  rater: string;
  comment: string;
}

export interface RatingsSummary {
  format: typeof RATINGS_FORMAT;
  tag: string;
  criteria: string[];
  scale: { min: number; max: number };
  raters: string[];
  /** Individual ratings (rater x sample rows with at least one score; comment-only rows not counted). */
  ratings: number;
  /** Samples in the key, and those with at least one rating. */
  samples: number;
  ratedSamples: number;
  methods: { interval: string; winRate: string; agreement: string };
  models: ModelScores[];
  pairwise: PairwiseWin[];
  agreement: Agreement[];
  /** Every non-empty comment, in the key's (sheet) order. */
  comments: RatingComment[];
}

export const METHODS = {
  interval: "95% Student-t interval (n - 1 degrees of freedom) over the model's samples; a sample's score is the mean of its raters' scores",
  winRate: 'per prompt, the higher sample score wins; ties count as half a win: (wins + ties / 2) / prompts',
  agreement: "Krippendorff's alpha, ordinal metric, per criterion: units = samples, coders = raters, values = individual scores",
} as const;

export function summarize(key: SampleKey, ratings: readonly Rating[]): RatingsSummary {
  const byId = new Map(key.samples.map((s) => [s.id, s]));
  const order = new Map(key.samples.map((s, i) => [s.id, i]));
  const comments: RatingComment[] = ratings.filter((r) => r.comment !== '')
    .sort((a, b) => order.get(a.id)! - order.get(b.id)! || a.rater.localeCompare(b.rater))
    .map((r) => ({ id: r.id, model: byId.get(r.id)!.model, prompt: key.prompts[byId.get(r.id)!.prompt].id, rater: r.rater, comment: r.comment }));
  const scored = ratings.filter((r) => Object.keys(r.scores).length > 0);
  const raters = [...new Set(scored.map((r) => r.rater))].sort();
  const modelOf = (id: string) => byId.get(id)!.model;

  // criterion -> sample id -> individual scores
  const scoresOf = new Map(key.criteria.map((c) => [c, new Map<string, number[]>()]));
  for (const r of ratings) {
    for (const [c, v] of Object.entries(r.scores)) {
      const m = scoresOf.get(c)!;
      if (!m.has(r.id)) m.set(r.id, []);
      m.get(r.id)!.push(v);
    }
  }
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  const models: ModelScores[] = key.models.map((m) => ({
    model: m.name, dir: m.model, adapter: m.adapter,
    criteria: Object.fromEntries(key.criteria.map((c) => {
      const own = [...scoresOf.get(c)!].filter(([id]) => modelOf(id) === m.name);
      return [c, { ...meanInterval(own.map(([, xs]) => mean(xs))), ratings: own.reduce((s, [, xs]) => s + xs.length, 0) }];
    })),
  }));

  const pairwise: PairwiseWin[] = [];
  for (const c of key.criteria) {
    // model -> prompt index -> sample score
    const perPrompt = new Map(key.models.map((m) => [m.name, new Map<number, number>()]));
    for (const [id, xs] of scoresOf.get(c)!) perPrompt.get(modelOf(id))!.set(byId.get(id)!.prompt, mean(xs));
    for (let i = 0; i < key.models.length; i++) {
      for (let j = i + 1; j < key.models.length; j++) {
        const [a, b] = [key.models[i].name, key.models[j].name];
        pairwise.push({ criterion: c, a, b, ...winRate(perPrompt.get(a)!, perPrompt.get(b)!) });
      }
    }
  }

  const agreement: Agreement[] = key.criteria.map((c) => {
    const r = krippendorffAlpha([...scoresOf.get(c)!.values()], 'ordinal');
    return { criterion: c, metric: 'ordinal', ...r };
  });

  return {
    format: RATINGS_FORMAT, tag: key.tag, criteria: [...key.criteria], scale: { ...key.scale }, raters,
    ratings: scored.length, samples: key.samples.length, ratedSamples: new Set(scored.map((r) => r.id)).size,
    methods: { ...METHODS }, models, pairwise, agreement, comments,
  };
}
