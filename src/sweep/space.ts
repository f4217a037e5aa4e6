/**
 * A sweep's search space: job fields (dotted paths, as `--set` takes them) mapped to what a trial may
 * set them to, and the two ways of choosing points from it.
 *   a list                       -> one of these values (any YAML value, lists included)
 *   {uniform: [a, b]}            -> a + u (b - a),                   u uniform in [0, 1)
 *   {log_uniform: [a, b]}        -> exp(ln a + u (ln b - ln a)),     0 < a; spreads evenly over decades
 *   {int_uniform: [a, b]}        -> an integer in [a, b], both ends included
 * Grid: the Cartesian product of the lists (an int_uniform counts as the list a..b), in the order the
 * fields are written, the last varying fastest. Random: each trial draws every field in that order
 * from one Rng(seed), so a seed names the same trials on every machine (util/rng.ts is backend-free).
 * Continuous draws are rounded to 4 significant digits (kept inside [a, b]): job.yaml stays readable
 * and the value written is the value trained with.
 */
import { Rng } from '../util/rng.ts';

export type Dimension =
  | { kind: 'choice'; values: readonly unknown[] }
  | { kind: 'uniform' | 'log_uniform' | 'int_uniform'; low: number; high: number };

export interface SpaceField {
  /** The job field, dotted: `training.lr`. */
  key: string;
  dim: Dimension;
}

/** A trial's values: dotted job field -> value, in the space's order. */
export type Params = Record<string, unknown>;

export const DISTRIBUTIONS = ['uniform', 'log_uniform', 'int_uniform'] as const;

/** Grids larger than this are refused: a typo in an int_uniform range should not plan a million runs. */
export const MAX_GRID = 10_000;

/**
 * One `space:` entry -> a Dimension, or the reason it is not one (the caller names file and field).
 */
export function parseDimension(value: unknown): Dimension | string {
  if (Array.isArray(value)) return value.length ? { kind: 'choice', values: value } : 'an empty list of choices';
  const shape = `a list of choices or one of {${DISTRIBUTIONS.join(': [a, b]}, {')}: [a, b]}`;
  if (typeof value !== 'object' || value === null) return `expected ${shape}, got ${JSON.stringify(value)}; a fixed value belongs in the base job`;
  const keys = Object.keys(value);
  const kind = keys[0] as (typeof DISTRIBUTIONS)[number];
  if (keys.length !== 1 || !DISTRIBUTIONS.includes(kind)) {
    return `expected ${shape}, got a mapping with ${keys.join(', ') || 'no keys'}; nested job fields are written as one dotted key (training.lr)`;
  }
  const range = (value as Record<string, unknown>)[kind];
  if (!Array.isArray(range) || range.length !== 2 || !range.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    return `${kind}: expected [low, high] (two numbers), got ${JSON.stringify(range)}`;
  }
  const [low, high] = range as [number, number];
  if (low > high) return `${kind}: low ${low} is above high ${high}`;
  if (kind === 'log_uniform' && low <= 0) return `log_uniform: low must be > 0, got ${low}`;
  if (kind === 'int_uniform' && !(Number.isInteger(low) && Number.isInteger(high))) return `int_uniform: expected integers, got [${low}, ${high}]`;
  return { kind, low, high };
}

/** The values a grid takes along one field, or undefined for a continuous distribution. */
function gridValues(dim: Dimension): readonly unknown[] | undefined {
  if (dim.kind === 'choice') return dim.values;
  if (dim.kind === 'int_uniform') return Array.from({ length: dim.high - dim.low + 1 }, (_, i) => dim.low + i);
  return undefined;
}

/** Points of the full grid (product of the fields' values); NaN when a field is continuous. */
export function gridSize(space: readonly SpaceField[]): number {
  return space.reduce((n, f) => n * (gridValues(f.dim)?.length ?? NaN), 1);
}

/** Every grid point, first field slowest. Call only when every field has grid values (gridSize is finite). */
export function gridPoints(space: readonly SpaceField[]): Params[] {
  let points: Params[] = [{}];
  for (const f of space) {
    const values = gridValues(f.dim)!;
    points = points.flatMap((p) => values.map((v) => ({ ...p, [f.key]: v })));
  }
  return points;
}

const round4 = (x: number, low: number, high: number) => Math.min(high, Math.max(low, Number(x.toPrecision(4))));

/** One draw along `dim`. */
export function draw(dim: Dimension, rng: Rng): unknown {
  switch (dim.kind) {
    case 'choice': return dim.values[rng.int(dim.values.length)];
    case 'int_uniform': return dim.low + rng.int(dim.high - dim.low + 1);
    case 'uniform': return round4(dim.low + rng.next() * (dim.high - dim.low), dim.low, dim.high);
    case 'log_uniform': {
      const [a, b] = [Math.log(dim.low), Math.log(dim.high)];
      return round4(Math.exp(a + rng.next() * (b - a)), dim.low, dim.high);
    }
  }
}

/** `n` random points: trial i is the i-th draw of every field, in the space's order, from Rng(seed). */
export function randomPoints(space: readonly SpaceField[], n: number, seed: number): Params[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Object.fromEntries(space.map((f) => [f.key, draw(f.dim, rng)])));
}

/** `training.lr=0.001 training.optimizer=sgd`: how logs and errors show a trial's values. */
export const formatParams = (p: Params): string => Object.entries(p).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
