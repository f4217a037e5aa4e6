/**
 * What a checkpoint records about the run besides the weights (trainer_state.json), and how a
 * checkpoint directory is found: the `latest` pointer names the newest complete one. Writing the
 * weights and optimizer moments is train/checkpoint.ts (it needs the model); everything here is
 * plain files, so the coordinator reads checkpoints without loading a model.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointCorruptError } from '../errors.ts';
import { CHECKPOINT_NAMES } from './outputs.ts';

export interface TrainerState {
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
  step: number, stepsPerEpoch: number, rest: Pick<TrainerState, 'seed' | 'schedule' | 'labels' | 'earlyStopping'>,
): TrainerState {
  return { step, epoch: Math.floor(step / stepsPerEpoch), stepInEpoch: step % stepsPerEpoch, ...rest };
}

const STEP_DIR = /^step-\d{8}$/;
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
  try {
    return JSON.parse(await readFile(file, 'utf8')) as TrainerState;
  } catch (err) {
    throw new CheckpointCorruptError(`${file}: unreadable (${(err as Error).message}); remove the checkpoint or point \`latest\` at an earlier one`);
  }
}

/** Checkpoint directories in `dir` beyond the newest `keep`, oldest first. */
export async function checkpointsBeyond(dir: string, keep: number): Promise<string[]> {
  const all = (await readdir(dir)).filter((f) => STEP_DIR.test(f)).sort();
  return all.slice(0, Math.max(0, all.length - keep)).map((f) => join(dir, f));
}
