/**
 * SWEEP.yaml -> CompiledSweep: the base job (a job file, or a job inline), the search space, the
 * strategy and what ranks the trials. Every problem is reported at once, each as
 * `sweep.yaml:LINE: field: what is wrong`. The trial jobs themselves are checked by trial-job.ts
 * with the job schema, before anything is written.
 *
 *   base: jobs/job.yaml            # or an inline job mapping; relative paths as in that job file
 *   space:
 *     training.lr: {log_uniform: [1e-5, 1e-2]}
 *     training.optimizer: [adamw, sgd]
 *   strategy: grid | random | asha # default grid
 *   seed: 0                        # random and asha draw their configurations from it
 *   trials: 8                      # configurations drawn (random, asha); grid: at least the grid's
 *                                  # size; asha without trials starts from the grid
 *   metric: loss                   # a key of the trials' final evaluation (eval_loss = loss)
 *   mode: min | max                # default: min for loss / perplexity, else max
 *   min_steps: 10                  # asha: the first rung's steps,
 *   max_steps: 90                  #   the last rung's,
 *   reduction_factor: 3            #   and eta (the best 1/eta of a rung continue)
 *   output: sweeps/NAME            # default sweeps/<file name without extension>, beside the file
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { rungSteps } from './halving.ts';
import { gridPoints, gridSize, MAX_GRID, parseDimension, randomPoints, type Params, type SpaceField } from './space.ts';

export type Strategy = 'grid' | 'random' | 'asha';

export interface CompiledSweep {
  /** The sweep file, resolved. */
  file: string;
  name: string;
  outputDir: string;
  base: {
    /** The base job as parsed YAML (not validated here: trial-job.ts compiles each trial's job). */
    spec: Record<string, unknown>;
    /** The folder its relative paths resolve against: the job file's, or the sweep file's for an inline base. */
    dir: string;
    /** Where it came from, for messages: the job file, or `sweep.yaml: base`. */
    source: string;
  };
  space: SpaceField[];
  strategy: Strategy;
  seed: number;
  /** The metric's key in an evaluation result (`eval_loss` given -> `loss`). */
  metric: string;
  mode: 'min' | 'max';
  asha?: { minSteps: number; maxSteps: number; eta: number; rungs: number[] };
  /** The configurations in trial order: configs[0] is trial-0001. */
  configs: Params[];
  /** How a space field was given, for messages: `sweep.yaml:7 space.training.lr`. */
  fieldOrigin: (key: string) => string;
}

export class SweepSpecError extends InputError {
  override readonly name: string = 'SweepSpecError';
}

const positiveInt = z.number().int().positive();

const SweepSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only').optional(),
    base: z.union([z.string().min(1), z.record(z.string(), z.unknown())], { error: 'expected a job file path or an inline job mapping' }),
    space: z.record(z.string(), z.unknown()).refine((s) => Object.keys(s).length > 0, 'name at least one job field to vary'),
    strategy: z.enum(['grid', 'random', 'asha']).default('grid'),
    seed: z.number().int().nonnegative().default(0),
    trials: positiveInt.optional(),
    metric: z.string().min(1).default('loss'),
    mode: z.enum(['min', 'max']).optional(),
    min_steps: positiveInt.optional(),
    max_steps: positiveInt.optional(),
    reduction_factor: z.number().int().min(2).optional(),
    output: z.string().min(1).optional(),
  })
  .strict();

/** Job fields a strategy sets itself: asha gives each rung its training.max_steps. */
const ASHA_OWNS = ['training.max_steps', 'training.epochs'];

/** Parses YAML text; a syntax error names file:line. `lines` (optional) is filled for lineOf. */
function parseYamlFile(text: string, file: string, lines?: LineCounter): Document {
  const doc = parseDocument(text, { prettyErrors: true, lineCounter: lines });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new SweepSpecError(`${file}${line ? `:${line}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  return doc;
}

/** The 1-based line of the node at `path` in `doc`, or of its nearest ancestor that exists. */
function lineOf(doc: Document, lines: LineCounter, path: readonly (string | number)[]): number | undefined {
  for (let p = [...path]; ; p = p.slice(0, -1)) {
    const node = (p.length ? doc.getIn(p, true) : doc.contents) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
    if (p.length === 0) return undefined;
  }
}

/** Default mode of a metric: loss-like ones are minimised (as early stopping decides, run/early-stopping.ts). */
export const defaultMode = (metric: string): 'min' | 'max' => (/loss|perplexity/.test(metric) ? 'min' : 'max');

/**
 * Reads and checks a sweep file. `outputOverride`: --output (relative to the working directory).
 * The base job's own fields are checked later, per trial (trial-job.ts).
 */
export async function loadSweepFile(sweepFile: string, outputOverride?: string): Promise<CompiledSweep> {
  const file = resolve(sweepFile);
  const text = await readFile(file, 'utf8').catch(() => {
    throw new SweepSpecError(`${sweepFile}: cannot read the sweep file`);
  });
  const lines = new LineCounter();
  const doc = parseYamlFile(text, sweepFile, lines);
  const at = (path: readonly (string | number)[]) => {
    const line = lineOf(doc, lines, path);
    return `${sweepFile}${line ? `:${line}` : ''}`;
  };
  const problems: string[] = [];
  const problem = (path: readonly (string | number)[], message: string) => problems.push(`  ${at(path)}: ${path.join('.') || '(top level)'}: ${message}`);
  const fail = () => new SweepSpecError(`${sweepFile}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the sweep spec:\n${problems.join('\n')}`);

  const parsed = SweepSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const unknown = i.code === 'unrecognized_keys' ? ` (${(i as { keys: string[] }).keys.join(', ')})` : '';
      problem(i.path as (string | number)[], `${i.message}${unknown}`);
    }
    throw fail();
  }
  const s = parsed.data;

  const space: SpaceField[] = [];
  for (const [key, value] of Object.entries(s.space)) {
    const dim = parseDimension(value);
    if (typeof dim === 'string') problem(['space', key], dim);
    else space.push({ key, dim });
    if (key.split('.').some((k) => k === '')) problem(['space', key], 'expected a dotted job field such as training.lr');
  }

  const asha = s.strategy === 'asha';
  if (asha) {
    if (s.min_steps === undefined) problem(['min_steps'], 'strategy asha needs min_steps (the first rung\'s steps)');
    if (s.max_steps === undefined) problem(['max_steps'], 'strategy asha needs max_steps (the last rung\'s steps)');
    if (s.min_steps !== undefined && s.max_steps !== undefined && s.min_steps >= s.max_steps) problem(['min_steps'], `${s.min_steps} is not below max_steps ${s.max_steps}`);
    for (const k of ASHA_OWNS) if (k in s.space) problem(['space', k], 'strategy asha sets each rung\'s training.max_steps itself: remove this field from the space');
  } else {
    for (const k of ['min_steps', 'max_steps', 'reduction_factor'] as const) {
      if (s[k] !== undefined) problem([k], `only strategy asha uses ${k} (strategy is ${s.strategy})`);
    }
  }
  if (s.strategy === 'random' && s.trials === undefined) problem(['strategy'], 'strategy random needs trials (how many configurations to draw)');

  // asha without trials starts from the grid (every field a list or int_uniform), like strategy grid.
  const fromGrid = s.strategy === 'grid' || (asha && s.trials === undefined);
  let configs: Params[] = [];
  if (fromGrid) {
    const continuous = space.filter((f) => f.dim.kind === 'uniform' || f.dim.kind === 'log_uniform');
    for (const f of continuous) {
      problem(['space', f.key], `strategy ${s.strategy}${asha ? ' without trials' : ''} runs the grid, which needs a list of values (or int_uniform); ${f.dim.kind} is for strategy random, or asha with trials`);
    }
    const size = gridSize(space);
    if (!continuous.length && size > MAX_GRID) problem(['space'], `the grid has ${size} points (more than ${MAX_GRID}); use strategy random with trials`);
    if (!continuous.length && s.trials !== undefined && s.trials < size) problem(['trials'], `the grid has ${size} points, more than trials ${s.trials}; raise trials or shrink the space`);
    if (!problems.length) configs = gridPoints(space);
  } else if (s.trials !== undefined && !problems.length) {
    configs = randomPoints(space, s.trials, s.seed);
  }

  // The base job: a file beside the sweep file, or inline.
  let base: CompiledSweep['base'] | undefined;
  if (typeof s.base === 'string') {
    const jobFile = resolve(dirname(file), s.base);
    const jobText = await readFile(jobFile, 'utf8').catch(() => undefined);
    if (jobText === undefined) {
      problem(['base'], `cannot read the job file ${jobFile}`);
    } else {
      const job = parseYamlFile(jobText, jobFile).toJS();
      if (typeof job !== 'object' || job === null || Array.isArray(job)) problem(['base'], `${jobFile} does not hold a job mapping`);
      else base = { spec: job as Record<string, unknown>, dir: dirname(jobFile), source: jobFile };
    }
  } else {
    base = { spec: s.base, dir: dirname(file), source: `${sweepFile}: base` };
  }
  if (problems.length) throw fail();

  const metric = s.metric.replace(/^eval_/, '');
  const name = s.name ?? basename(file, extname(file)).replace(/[^A-Za-z0-9._-]/g, '-');
  const outputDir = outputOverride !== undefined ? resolve(outputOverride) : resolve(dirname(file), s.output ?? `sweeps/${name}`);
  return {
    file, name, outputDir, base: base!, space, strategy: s.strategy, seed: s.seed, metric, mode: s.mode ?? defaultMode(metric),
    asha: asha ? { minSteps: s.min_steps!, maxSteps: s.max_steps!, eta: s.reduction_factor ?? 3, rungs: rungSteps(s.min_steps!, s.max_steps!, s.reduction_factor ?? 3) } : undefined,
    configs,
    fieldOrigin: (key) => `${at(['space', key])} space.${key}`,
  };
}
