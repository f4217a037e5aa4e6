/**
 * Checkpoints: <dir>/step-00000100/ holding the model (Hugging Face format), the optimizer moments
 * (optimizer.safetensors) and trainer_state.json (step, schedule, data cursor, RNG, early-stopping
 * state). Each checkpoint directory is built beside the target and renamed into place; then the
 * `latest` pointer file is replaced atomically; only then are checkpoints beyond `keep` removed.
 * A crash at any point leaves `latest` naming a complete checkpoint.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointCorruptError } from '../errors.ts';
import type { Task } from '../model/config.ts';
import { loadModel, readConfigJson, saveHostModel } from '../model/model-dir.ts';
import type { Model } from '../model/model.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from '../model/safetensors.ts';
import type { AdamW } from '../optim/adamw.ts';
import { replaceDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import type { FlatParams } from './flat-params.ts';

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

export const stepDirName = (step: number) => `step-${String(step).padStart(8, '0')}`;

export async function saveCheckpoint(dir: string, state: TrainerState, flat: FlatParams, optimizer: AdamW, model: Model, keep: number, tokenizerFrom: string): Promise<string> {
  const name = stepDirName(state.step);
  const target = join(dir, name);
  const internal = new Map<string, HostTensor>();
  const moments = new Map<string, HostTensor>();
  flat.names.forEach((n, k) => {
    const shape = model.specs[k].shape;
    const [a, b] = [flat.offsets[k], flat.offsets[k] + flat.model.params.get(n)!.size];
    internal.set(n, { shape, data: flat.params.subarray(a, b) });
    moments.set(`m.${n}`, { shape, data: optimizer.m.subarray(a, b) });
    moments.set(`v.${n}`, { shape, data: optimizer.v.subarray(a, b) });
  });
  await replaceDirAtomic(target, async (staging) => {
    await saveHostModel(join(staging, 'model'), model.config, model.task, internal, { tokenizerFrom });
    await writeSafetensors(join(staging, 'optimizer.safetensors'), moments, { metadata: { step: String(optimizer.step) } });
    await writeFileAtomic(join(staging, 'trainer_state.json'), JSON.stringify(state, null, 2) + '\n');
  });
  await writeFileAtomic(join(dir, 'latest'), name + '\n');
  const all = (await readdir(dir)).filter((f) => /^step-\d{8}$/.test(f)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(join(dir, old), { recursive: true, force: true });
  return target;
}

/** The checkpoint `latest` points at, or undefined when there is none. */
export async function latestCheckpoint(dir: string): Promise<string | undefined> {
  const pointer = await readFile(join(dir, 'latest'), 'utf8').catch(() => undefined);
  if (pointer === undefined) return undefined;
  const name = pointer.trim();
  if (!/^step-\d{8}$/.test(name)) throw new CheckpointCorruptError(`${join(dir, 'latest')}: does not name a checkpoint ("${name}")`);
  return join(dir, name);
}

export interface RestoredCheckpoint {
  state: TrainerState;
  model: Model;
}

/** Loads a checkpoint's model, and restores optimizer moments and parameters into flat buffers. */
export async function readCheckpoint(path: string, task: Task): Promise<RestoredCheckpoint> {
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(join(path, 'trainer_state.json'), 'utf8'));
  } catch (err) {
    throw new CheckpointCorruptError(`${join(path, 'trainer_state.json')}: unreadable (${(err as Error).message}); remove the checkpoint or point \`latest\` at an earlier one`);
  }
  await readConfigJson(join(path, 'model'));
  const { model } = await loadModel(join(path, 'model'), { task });
  return { state, model };
}

export async function restoreOptimizer(path: string, flat: FlatParams, optimizer: AdamW): Promise<void> {
  const file = join(path, 'optimizer.safetensors');
  const st = await readSafetensors(file);
  const m = new Float32Array(flat.size);
  const v = new Float32Array(flat.size);
  flat.names.forEach((n, k) => {
    const tm = st.tensors.get(`m.${n}`);
    const tv = st.tensors.get(`v.${n}`);
    if (!tm || !tv) throw new CheckpointCorruptError(`${file}: moments for "${n}" are missing`);
    m.set(tm.data, flat.offsets[k]);
    v.set(tv.data, flat.offsets[k]);
  });
  optimizer.restore({ step: Number(st.metadata.step), m, v });
}
