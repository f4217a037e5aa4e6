/**
 * A trial's job: the base job with the trial's values set at their dotted paths, written as
 * <sweep output>/trial-NNNN/job.yaml so that the trial is a normal run directory (`ringtune train
 * trial-0003/job.yaml --resume` works on it by hand). What the sweep sets besides the space:
 *   output: .                the trial's directory (its checkpoints default to ./checkpoints);
 *                            the base job's output and checkpoint.dir are not used
 *   name: <base>-trial-NNNN  distinct NATS subjects when trials run on a local cluster; handed to a
 *                            running cluster (--cluster), the name its serving workers join instead
 *   asha: training.max_steps the rung's steps (training.epochs removed), and checkpoint.every_n_steps
 *                            a divisor of every rung, so each rung ends on a checkpoint to resume
 * Relative paths of the base job (and of path values in the space) resolve against the base job's
 * folder, as in the base job; they are rewritten relative to the trial's folder. PATH_FIELDS lists
 * the job fields compile.ts resolves as paths.
 * Each trial's job is compiled with the job schema before anything is written, so a value out of
 * range names the sweep file's line and field: `sweep.yaml:7 space.training.lr=2: training.lr: ...`.
 */
import { isAbsolute, join, relative, resolve } from 'node:path';
import { stringify } from 'yaml';
import { compileJob, JobSpecError, type CompiledJob } from '../config/compile.ts';
import { resultKeys } from '../eval/index.ts';
import { hubRefOf } from '../hub/hub-id.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { gcd } from './halving.ts';
import { formatParams, type Params } from './space.ts';
import { SweepSpecError, type CompiledSweep } from './sweep-spec.ts';

/** Job fields holding paths (compile.ts resolves each against the job file's folder). */
export const PATH_FIELDS: readonly (readonly string[])[] = [
  ['data', 'train'], ['data', 'eval'], ['cluster', 'secret_file'],
  ...['nats.tls', 'ring_tls'].flatMap((t) => ['ca', 'cert', 'key'].map((k) => ['cluster', ...t.split('.'), k])),
];

export const TRIAL_JOB = 'job.yaml';
export const trialId = (index: number): string => `trial-${String(index + 1).padStart(4, '0')}`;

type Mapping = Record<string, unknown>;
const isMapping = (x: unknown): x is Mapping => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Sets `value` at the dotted `key`, creating missing sections: returns the sections it created
 * (dotted), or a message when a non-mapping is in the way.
 */
function setPath(spec: Mapping, key: string, value: unknown): string[] | string {
  const parts = key.split('.');
  const created: string[] = [];
  let node = spec;
  for (const [i, k] of parts.slice(0, -1).entries()) {
    if (node[k] === undefined) {
      node[k] = {};
      created.push(parts.slice(0, i + 1).join('.'));
    }
    if (!isMapping(node[k])) return `${parts.slice(0, i + 1).join('.')} is ${JSON.stringify(node[k])} in the base job, not a section with keys`;
    node = node[k] as Mapping;
  }
  node[parts[parts.length - 1]] = value;
  return created;
}

function getPath(spec: Mapping, path: readonly string[]): unknown {
  return path.reduce<unknown>((node, k) => (isMapping(node) ? node[k] : undefined), spec);
}

export interface TrialJob {
  spec: Mapping;
  job: CompiledJob;
}

/**
 * The job of trial `id` with `params`, for ASHA rung steps `rungSteps` (undefined: the base job's
 * own length); `name` replaces the trial's own job name (the running cluster's job).
 * Throws SweepSpecError naming the sweep file, the trial and each field.
 */
export function trialJob(sweep: CompiledSweep, id: string, params: Params, rungSteps?: number, name?: string): TrialJob {
  const dir = join(sweep.outputDir, id);
  const spec = structuredClone(sweep.base.spec);
  const origins = new Map<string, string>();
  const where = `${sweep.file}: ${id} (${formatParams(params)})`;
  for (const [key, value] of Object.entries(params)) {
    const created = setPath(spec, key, structuredClone(value));
    if (typeof created === 'string') throw new SweepSpecError(`${where}: ${sweep.fieldOrigin(key)}: ${created}`);
    // A section this field created is this field's doing too (training.lr.peak makes training.lr a mapping).
    for (const k of [key, ...created]) origins.set(k, `${sweep.fieldOrigin(key)}=${JSON.stringify(value)}`);
  }
  // Paths: resolved as the base job resolves them, written relative to the trial's folder.
  const rebase = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) ? relative(dir, resolve(sweep.base.dir, p)) || '.' : p);
  for (const path of PATH_FIELDS) {
    const p = getPath(spec, path);
    if (p !== undefined) setPath(spec, path.join('.'), rebase(p));
  }
  if (typeof spec.model === 'string' && !hubRefOf(spec.model, resolve(sweep.base.dir, spec.model))) spec.model = rebase(spec.model);
  spec.name = name ?? `${baseJobName(sweep)}-${id}`;
  spec.output = '.';
  if (isMapping(spec.checkpoint)) delete spec.checkpoint.dir;
  if (rungSteps !== undefined && sweep.asha) {
    const training = isMapping(spec.training) ? spec.training : (spec.training = {});
    delete training.epochs;
    training.max_steps = rungSteps;
    const every = getPath(spec, ['checkpoint', 'every_n_steps']);
    const divisor = sweep.asha.rungs.reduce(gcd, typeof every === 'number' && every > 0 ? every : 0);
    setPath(spec, 'checkpoint.every_n_steps', divisor);
    origins.set('training.max_steps', `${sweep.file}: min_steps / max_steps (asha rung of ${rungSteps} steps)`);
  }
  origins.set('output', `${sweep.file}: the trial's directory`);
  let job: CompiledJob;
  try {
    job = compileJob(spec, join(dir, TRIAL_JOB), { origins });
  } catch (err) {
    if (!(err instanceof JobSpecError)) throw err;
    const lines = err.message.slice(err.message.indexOf('\n') + 1);
    throw new SweepSpecError(`${where} is not a valid job (base ${sweep.base.source}):\n${lines}`);
  }
  return { spec, job };
}

/**
 * Compiles the job of every trial (every rung of ASHA) and checks that it reports the sweep's
 * metric on an evaluation set. Throws listing up to 5 problems.
 */
export function checkTrials(sweep: CompiledSweep): void {
  const problems = new Set<string>();
  const rungs = sweep.asha?.rungs ?? [undefined];
  sweep.configs.forEach((params, i) => {
    for (const steps of rungs) {
      if (problems.size >= 5) return;
      try {
        const { job } = trialJob(sweep, trialId(i), params, steps);
        const keys = resultKeys(job.task, job.eval.generationMetrics);
        if (!keys.includes(sweep.metric)) problems.add(`${sweep.file}: metric "${sweep.metric}" is not reported by a ${job.task} job; its evaluation reports ${keys.join(', ')}`);
        if (!job.data.evalPath && job.data.evalFraction === 0) {
          problems.add(`${sweep.file}: the sweep ranks trials by their evaluation; the base job (${sweep.base.source}) has no data.eval and data.eval_fraction 0`);
        }
      } catch (err) {
        if (!(err instanceof SweepSpecError)) throw err;
        problems.add(err.message);
      }
    }
  });
  if (problems.size) throw new SweepSpecError([...problems].join('\n'));
}

/** The base job's `name` (the schema's default when it has none). */
export const baseJobName = (sweep: CompiledSweep): string => (typeof sweep.base.spec.name === 'string' ? sweep.base.spec.name : 'job');

/** Writes the trial's job.yaml (atomically); returns its path. */
export async function writeTrialJob(dir: string, spec: Mapping): Promise<string> {
  const file = join(dir, TRIAL_JOB);
  await writeFileAtomic(file, `# written by ringtune sweep; paths are relative to this folder\n${stringify(spec)}`);
  return file;
}
