/**
 * What a checkpoint records about the run besides the weights (trainer_state.json), and how a
 * checkpoint directory is found: the `latest` pointer names the newest complete one. Writing the
 * weights and optimizer moments is train/checkpoint.ts (it needs the model); everything here is
 * plain files, so the coordinator reads checkpoints without loading a model.
 *
 * Checkpoints belong to a run: trainer_state.json names its `runId`, made once when a run starts
 * fresh and kept by every resume of it. Pruning only ever removes checkpoints of the run doing the
 * pruning, so the checkpoints of an earlier run in the same directory cannot push this run's newest
 * ones out (and leave `latest` naming a removed one). Starting a run in a directory is
 * checkpoint-dir.ts.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointCorruptError } from '../errors.ts';
import { CHECKPOINT_NAMES } from './outputs.ts';
import { reviveNumber, stringifyRecord } from './record-json.ts';

export interface TrainerState {
  /**
   * The run this checkpoint belongs to. Checkpoints written before run ids existed read as '' and
   * belong to no run: pruning never removes them.
   */
  runId: string;
  /** Optimizer steps completed. */
  step: number;
  epoch: number;
  /** Position of the next batch within the epoch's order. */
  stepInEpoch: number;
  seed: number;
  schedule: { name: string; peakLr: number; warmupSteps: number; totalSteps: number; minLrRatio: number };
  earlyStopping?: { best: number; badEvals: number };
  /** Classification labels the model was trained with. */
  labels?: string[];
}

/** The state after `step` steps of a plan with `stepsPerEpoch` steps per epoch. */
export function trainerState(
  step: number, stepsPerEpoch: number, rest: Pick<TrainerState, 'runId' | 'seed' | 'schedule' | 'labels' | 'earlyStopping'>,
): TrainerState {
  return { step, epoch: Math.floor(step / stepsPerEpoch), stepInEpoch: step % stepsPerEpoch, ...rest };
}

/** trainer_state.json's text (early stopping's initial best is Infinity: record-json.ts keeps it). */
export const encodeTrainerState = (state: TrainerState) => stringifyRecord(state, 2) + '\n';

export const STEP_DIR = /^step-\d{8}$/;
export const stepDirName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** The checkpoint `latest` points at, or undefined when there is none. */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  const pointer = await readFile(join(dir, CHECKPOINT_NAMES.latest), 'utf8').catch(() => undefined);
  if (pointer === undefined) return undefined;
  const name = pointer.trim();
  if (!STEP_DIR.test(name)) throw new CheckpointCorruptError(`${join(dir, CHECKPOINT_NAMES.latest)}: does not name a checkpoint ("${name}")`);
  return join(dir, name);
}

export async function readTrainerState(checkpoint: string): Promise<TrainerState> {
  const file = join(checkpoint, CHECKPOINT_NAMES.trainerState);
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(file, 'utf8')) as TrainerState;
  } catch (err) {
    throw new CheckpointCorruptError(`${file}: unreadable (${(err as Error).message}); remove the checkpoint or point \`latest\` at an earlier one`);
  }
  const bad = (what: string) => new CheckpointCorruptError(`${file}: ${what}; remove the checkpoint or point \`latest\` at an earlier one`);
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw bad('not a trainer state (expected a JSON object)');
  for (const k of ['step', 'epoch', 'stepInEpoch', 'seed'] as const) {
    if (!Number.isInteger(state[k]) || state[k] < 0) throw bad(`field ${k} is ${JSON.stringify(state[k])}, not a non-negative integer`);
  }
  if (typeof state.schedule !== 'object' || state.schedule === null) throw bad('field schedule is missing');
  // The one number that may be non-finite (written "Infinity" before the first evaluation; older
  // checkpoints wrote null, which EarlyStopper reads as "no best yet"). Revived by name, not for every
  // string: a classification label may well be "NaN".
  if (state.earlyStopping) state.earlyStopping.best = reviveNumber(state.earlyStopping.best) as number;
  return { ...state, runId: state.runId ?? '' };
}

/**
 * Checkpoint directories of run `runId` in `dir` beyond its newest `keep`, oldest first. Directories
 * of other runs, and those whose trainer_state.json cannot be read, are never listed.
 */
export async function checkpointsBeyond(dir: string, keep: number, runId: string): Promise<string[]> {
  const mine: string[] = [];
  for (const f of (await readdir(dir)).filter((name) => STEP_DIR.test(name)).sort()) {
    const owner = await readTrainerState(join(dir, f)).then((s) => s.runId, () => undefined);
    if (runId !== '' && owner === runId) mine.push(join(dir, f));
  }
  return mine.slice(0, Math.max(0, mine.length - keep));
}
