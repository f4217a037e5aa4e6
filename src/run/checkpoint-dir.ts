/**
 * Claiming a checkpoint directory: what every entry point (ringtune train, the coordinator of
 * ringtune local / a cluster) does before a run writes checkpoints, so they all refuse and clean up
 * the same way.
 *   1. --resume and --overwrite together are an error.
 *   2. Fresh run (neither flag): a directory holding any checkpoint (a step dir, `latest`, or a step
 *      dir's saved old version) is refused, naming the directory and both flags. So is an output
 *      directory (`outputDir`, when given) holding a previous run's outputs (final/, metrics.jsonl,
 *      eval_report.json, report.html): a run without checkpoints must not replace them silently
 *      either. Nothing is touched.
 *   3. Staging leftovers of a crashed write are cleared (util/atomic.ts names them):
 *      `.step-N.tmp-*` (an unfinished checkpoint) and `.latest.tmp-*` are removed; `.step-N.tmp-*.old`
 *      (the complete previous step-N, left when a crash fell between replaceDirAtomic's two renames)
 *      is put back as step-N if step-N is missing, removed otherwise.
 *   4. --overwrite: `latest` is removed first (a crash midway never leaves it naming a removed
 *      checkpoint), then every step dir, then the previous outputs in `outputDir` (a report of the old
 *      run must not sit beside the new run's). The new run gets a new run id.
 *   5. --resume: `latest` must name a checkpoint the directory holds, with a readable
 *      trainer_state.json. The run continues that checkpoint's run id and the history lines it carries.
 * One run writes a checkpoint directory at a time: every leftover is judged to be a crash's.
 * Every entry point claims before it writes anything; --resume continues the same run, whose outputs
 * it keeps.
 *
 * --resume-if-present (a coordinator that Kubernetes restarts with the same arguments) picks --resume,
 * a fresh start or a refusal from what the directory holds: claimOptionsIfPresent, below.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointCorruptError, InputError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { readHistoryFile, type HistoryLine } from './history.ts';
import { CHECKPOINT_NAMES, OUTPUT_NAMES } from './outputs.ts';
import { latestCheckpoint, readTrainerState, STEP_DIR, type TrainerState } from './trainer-state.ts';

/** The checkpoint a run resumes from. */
export interface ResumePoint {
  checkpoint: string;
  state: TrainerState;
  /** The train lines the checkpoint carries (RunHistory.open fills steps metrics.jsonl lacks). */
  history: HistoryLine[];
}

export interface CheckpointClaim {
  /** The run the checkpoints written from now on belong to: new, or the resumed checkpoint's. */
  runId: string;
  resumed?: ResumePoint;
}

/** 12 hex digits: the id of a run (checkpoints) or of a coordinator's session (messages). */
export const newRunId = (): string => randomBytes(6).toString('hex');

// `.step-00000010.tmp-<pid>-<hex>` and `...old`, `.latest.tmp-<pid>-<hex>` (util/atomic.ts tempPathFor).
const STAGING = /^\.(step-\d{8}|latest)\.tmp-.+?(\.old)?$/;

/** What a run leaves in its output directory that a new run would replace (outputs.ts). */
const RUN_OUTPUTS: readonly string[] = [OUTPUT_NAMES.finalModel, OUTPUT_NAMES.history, OUTPUT_NAMES.evalReport, OUTPUT_NAMES.htmlReport];

const listDir = (dir: string) => readdir(dir).catch((err: NodeJS.ErrnoException) => {
  if (err.code === 'ENOENT') return [] as string[];
  throw err;
});

/** Entries that are (or may restore) a checkpoint: a step dir, `latest`, a step dir's saved old version. */
const heldCheckpoints = (entries: string[]) =>
  entries.filter((f) => STEP_DIR.test(f) || f === CHECKPOINT_NAMES.latest || (STAGING.test(f) && f.endsWith('.old'))).sort();

export interface ClaimOptions {
  resume?: boolean;
  overwrite?: boolean;
  /** The run's output directory (CompiledJob.outputDir): its previous outputs are claimed too. */
  outputDir?: string;
}

export async function claimCheckpointDir(dir: string, o: ClaimOptions): Promise<CheckpointClaim> {
  // 1.
  if (o.resume && o.overwrite) throw new InputError('--resume continues the run in the checkpoint directory and --overwrite starts over: pass one of them');
  const entries = await listDir(dir);
  const outputs = o.outputDir ? (await listDir(o.outputDir)).filter((f) => RUN_OUTPUTS.includes(f)).sort() : [];
  const held = heldCheckpoints(entries);
  // 2.
  if (!o.resume && !o.overwrite && held.length > 0) {
    const shown = held.length > 4 ? [...held.slice(0, 2), '...', ...held.slice(-2)] : held;
    throw new InputError(`${dir} already holds checkpoints: pass --resume to continue that run or --overwrite to start over (its checkpoints are removed); found ${shown.join(', ')}`);
  }
  if (!o.resume && !o.overwrite && outputs.length > 0) {
    throw new InputError(`${o.outputDir} already holds a previous run's outputs (${outputs.join(', ')}): pass --overwrite to replace them, ` +
      '--output DIR to write elsewhere, or --resume to continue that run from its checkpoints');
  }
  // 3.
  for (const f of entries.filter((name) => STAGING.test(name))) {
    const [, target, old] = STAGING.exec(f)!;
    if (old && target !== CHECKPOINT_NAMES.latest && !entries.includes(target)) await rename(join(dir, f), join(dir, target));
    else await rm(join(dir, f), { recursive: true, force: true });
  }
  // 4.
  if (o.overwrite) {
    await rm(join(dir, CHECKPOINT_NAMES.latest), { force: true });
    for (const f of await readdir(dir).catch(() => [] as string[])) if (STEP_DIR.test(f)) await rm(join(dir, f), { recursive: true, force: true });
    for (const f of outputs) await rm(join(o.outputDir!, f), { recursive: true, force: true });
  }
  if (!o.resume) return { runId: newRunId() };
  // 5.
  const checkpoint = await latestCheckpoint(dir);
  if (!checkpoint) throw new InputError(`--resume: no checkpoint in ${dir} (its "${CHECKPOINT_NAMES.latest}" file is missing)`);
  if (!(await stat(checkpoint).then((s) => s.isDirectory(), () => false))) {
    const steps = (await readdir(dir)).filter((f) => STEP_DIR.test(f));
    throw new CheckpointCorruptError(`--resume: ${join(dir, CHECKPOINT_NAMES.latest)} names ${checkpoint}, which does not exist; ` +
      (steps.length ? `write the name of one of ${steps.join(', ')} into it, ` : '') + 'or start over with --overwrite');
  }
  const state = await readTrainerState(checkpoint);
  const history = await readHistoryFile(join(checkpoint, CHECKPOINT_NAMES.history));
  // A checkpoint from before run ids: the resumed run starts one (its older checkpoints are never pruned).
  return { runId: state.runId || newRunId(), resumed: { checkpoint, state, history } };
}

/**
 * The file in a checkpoint directory naming the job whose run it holds (`{"job": "<name>"}`). Written
 * by the first --resume-if-present run of a job; a run started without the flag writes none.
 */
export const OWNER_FILE = 'owner.json';

async function readOwner(dir: string): Promise<string | undefined> {
  const file = join(dir, OWNER_FILE);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  let job: unknown;
  try {
    job = (JSON.parse(text) as { job?: unknown }).job;
  } catch { /* reported below */ }
  if (typeof job !== 'string' || job === '') throw new InputError(`${file}: expected {"job": "<job name>"}; it names the job whose checkpoints ${dir} holds (remove it if the directory is yours)`);
  return job;
}

/**
 * --resume-if-present: the claim options (for claimCheckpointDir) that continue job `job`'s run in
 * `dir`, or start it, and never take another job's checkpoints or outputs.
 *   1. owner.json names another job: refused.
 *   2. Checkpoints and owner.json names this job: resume (a restarted coordinator of the same run).
 *   3. Checkpoints, no owner.json: refused. A run started without the flag wrote them, maybe another
 *      job's; pass --resume once to continue them (or --overwrite to start over).
 *   4. No checkpoint, owner.json names this job: an earlier attempt of this run stopped before its
 *      first checkpoint. It starts over, replacing that attempt's partial outputs (overwrite).
 *   5. Nothing: a fresh run. A previous run's outputs in `outputDir` are refused as claimCheckpointDir
 *      refuses them; otherwise owner.json is written (temp-then-rename) so a restart finds case 2 or 4.
 */
export async function claimOptionsIfPresent(dir: string, job: string, outputDir?: string): Promise<ClaimOptions> {
  const entries = await listDir(dir);
  const held = heldCheckpoints(entries);
  const owner = await readOwner(dir);
  const flags = 'pass --resume to continue them or --overwrite to start over (they are removed)';
  // 1.
  if (owner !== undefined && owner !== job) {
    throw new InputError(`--resume-if-present: ${dir} belongs to job "${owner}" (${OWNER_FILE}), not "${job}": give this job its own checkpoint.dir, or ${flags}`);
  }
  // 2, 3.
  if (held.length > 0) {
    if (owner === job) return { resume: true, outputDir };
    throw new InputError(`--resume-if-present: ${dir} holds checkpoints (${held.slice(-2).join(', ')}) of a run started without --resume-if-present, so not known to be job "${job}"'s: ${flags}`);
  }
  // 4.
  if (owner === job) return { overwrite: true, outputDir };
  // 5.
  const outputs = outputDir ? (await listDir(outputDir)).filter((f) => RUN_OUTPUTS.includes(f)).sort() : [];
  if (outputs.length > 0) {
    throw new InputError(`--resume-if-present: ${outputDir} already holds a previous run's outputs (${outputs.join(', ')}) and ${dir} no checkpoint of job "${job}": ` +
      'pass --overwrite to replace them, or give this job its own output directory');
  }
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, OWNER_FILE), JSON.stringify({ job }) + '\n');
  return { outputDir };
}
