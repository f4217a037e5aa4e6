/**
 * Checkpoints: <dir>/step-00000100/ holding the model (Hugging Face format; with LoRA the adapter in
 * PEFT's layout under adapter/, the base being the job's model), the optimizer state
 * (optimizer.safetensors), trainer_state.json (run id, step, schedule, data cursor, RNG,
 * early-stopping state) and history.jsonl (the run's train lines, src/run/history.ts says why).
 * Each checkpoint directory is built beside the target and renamed into place; then the `latest`
 * pointer file is replaced atomically; only then are this run's checkpoints beyond `keep` removed
 * (never another run's, never the one just written). A crash at any point leaves `latest` naming a
 * complete checkpoint. Names, trainer_state.json, the `latest` lookup and claiming a directory are
 * src/run/ (no model needed); this file writes and loads the tensors.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointCorruptError, InputError } from '../errors.ts';
import type { Task } from '../model/config.ts';
import type { ResolvedLora } from '../model/lora-config.ts';
import { loadModel, readConfigJson, saveHostModel } from '../model/model-dir.ts';
import type { Model } from '../model/model.ts';
import { numel } from '../model/params.ts';
import { loadAdapter, saveAdapter } from '../model/peft.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from '../model/safetensors.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import { encodeHistory, type HistoryLine } from '../run/history.ts';
import { CHECKPOINT_NAMES } from '../run/outputs.ts';
import { checkpointsBeyond, encodeTrainerState, readTrainerState, stepDirName, type TrainerState } from '../run/trainer-state.ts';
import { replaceDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import type { FlatParams } from './flat-params.ts';

export interface CheckpointContents {
  /** trainer_state.json; its runId decides which checkpoints pruning may remove. */
  state: TrainerState;
  /** The run's train lines up to state.step: at least every step since this process started or resumed the run. */
  history: readonly HistoryLine[];
  /** Checkpoints of this run to keep (checkpoint.keep). */
  keep: number;
  /** The job's model directory: the checkpoint's model gets its tokenizer files; a LoRA adapter names it as its base. */
  tokenizerFrom: string;
}

export async function saveCheckpoint(
  dir: string, c: CheckpointContents, { model, flat, optimizer }: { model: Model; flat: FlatParams; optimizer: Optimizer },
): Promise<string> {
  const { state, keep, tokenizerFrom } = c;
  const name = stepDirName(state.step);
  const target = join(dir, name);
  const internal = new Map<string, HostTensor>();
  const optimizerState = new Map<string, HostTensor>();
  const buffers = Object.entries(optimizer.buffers);
  flat.names.forEach((n, k) => {
    const shape = flat.specs[k].shape;
    const [a, b] = [flat.offsets[k], flat.offsets[k] + numel(shape)];
    internal.set(n, { shape, data: flat.params.subarray(a, b) });
    for (const [buffer, data] of buffers) optimizerState.set(`${buffer}.${n}`, { shape, data: data.subarray(a, b) });
  });
  await replaceDirAtomic(target, async (staging) => {
    if (model.adapter) await saveAdapter(model, join(staging, CHECKPOINT_NAMES.adapter), { baseModel: tokenizerFrom, tokenizerFrom, values: internal });
    else await saveHostModel(join(staging, CHECKPOINT_NAMES.model), model.config, model.task, internal, { tokenizerFrom });
    await writeSafetensors(join(staging, CHECKPOINT_NAMES.optimizer), optimizerState, { metadata: { step: String(optimizer.step), optimizer: optimizer.kind } });
    await writeFileAtomic(join(staging, CHECKPOINT_NAMES.trainerState), encodeTrainerState(state));
    await writeFileAtomic(join(staging, CHECKPOINT_NAMES.history), encodeHistory(c.history.filter((h) => h.type === 'train' && h.step <= state.step)));
  });
  await writeFileAtomic(join(dir, CHECKPOINT_NAMES.latest), name + '\n');
  for (const old of await checkpointsBeyond(dir, keep, state.runId)) if (old !== target) await rm(old, { recursive: true, force: true });
  return target;
}

export interface RestoredCheckpoint {
  state: TrainerState;
  model: Model;
}

/** A LoRA run's base: the job's model, loaded as setupTraining loads it, and the job's resolved LoRA settings. */
export interface LoraBase {
  modelDir: string;
  labels?: string[];
  seed: number;
  lora: ResolvedLora;
}

/**
 * Loads a checkpoint's model and its trainer state (restoreOptimizer then restores the optimizer's):
 * its model/ directory, or with LoRA the job's base plus the checkpoint's adapter/ (bit-identical to
 * the model that was saved: same base bits, same adapter bits).
 */
export async function readCheckpoint(path: string, task: Task, lora?: LoraBase): Promise<RestoredCheckpoint> {
  const state = await readTrainerState(path);
  const has = (name: string) => stat(join(path, name)).then(() => true, () => false);
  if (lora) {
    if (!(await has(CHECKPOINT_NAMES.adapter))) {
      throw new CheckpointCorruptError(`${path} has no ${CHECKPOINT_NAMES.adapter}/ directory${(await has(CHECKPOINT_NAMES.model)) ? ': it is a full fine-tuning checkpoint, and the job says method: lora' : ''}`);
    }
    const { model } = await loadModel(lora.modelDir, { task, labels: lora.labels, seed: lora.seed });
    try {
      const a = (await loadAdapter(model, join(path, CHECKPOINT_NAMES.adapter))).lora;
      const same = a.r === lora.lora.r && a.scale === lora.lora.scale && a.targetModules.join() === lora.lora.targetModules.join() && a.modulesToSave.join() === lora.lora.modulesToSave.join();
      if (!same) throw new InputError(`${path}: its adapter (r ${a.r}, scale ${a.scale}, target_modules [${a.targetModules}], modules_to_save [${a.modulesToSave}]) differs from the job's lora section; resume with the settings the run started with`);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return { state, model };
  }
  if (!(await has(CHECKPOINT_NAMES.model)) && (await has(CHECKPOINT_NAMES.adapter))) {
    throw new InputError(`${path} is a LoRA checkpoint (adapter/), and the job says method: full; set method: lora to resume it`);
  }
  await readConfigJson(join(path, CHECKPOINT_NAMES.model));
  const { model } = await loadModel(join(path, CHECKPOINT_NAMES.model), { task });
  return { state, model };
}

/**
 * Restores the optimizer state saved beside a checkpoint's model, bit for bit: saveCheckpoint writes
 * each state buffer as `<buffer>.<parameter>` tensors (`m.wte`, `momentum_buffer.wte`) with metadata
 * `step` and `optimizer` (the kind). The job's training.optimizer must be the checkpoint's (none in
 * the metadata = adamw, the only one before there was a choice), with the same buffers (sgd keeps one
 * only with momentum).
 */
export async function restoreOptimizer(path: string, flat: FlatParams, optimizer: Optimizer): Promise<void> {
  const file = join(path, CHECKPOINT_NAMES.optimizer);
  const st = await readSafetensors(file);
  const kind = st.metadata.optimizer ?? 'adamw';
  if (kind !== optimizer.kind) {
    throw new InputError(`${file}: the checkpoint was trained with training.optimizer ${kind}, this job sets ${optimizer.kind}; resume with training.optimizer: ${kind}, or start a new run with --overwrite`);
  }
  const step = Number(st.metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointCorruptError(`${file}: metadata step "${st.metadata.step}" is not a step count`);
  const names = Object.keys(optimizer.buffers).sort();
  const saved = [...new Set([...st.tensors.keys()].map((t) => t.slice(0, t.indexOf('.'))))].sort();
  if (saved.join() !== names.join()) {
    throw new InputError(`${file}: the checkpoint holds ${kind} state ${saved.join(', ') || '(none)'}, this job's ${kind} keeps ${names.join(', ') || 'none'}` +
      `${kind === 'sgd' ? ' (a momentum_buffer only with training.momentum > 0)' : ''}; resume with the settings the checkpoint was written with`);
  }
  const buffers = Object.fromEntries(names.map((b) => [b, new Float32Array(flat.size)]));
  flat.names.forEach((n, k) => {
    const size = (flat.offsets[k + 1] ?? flat.size) - flat.offsets[k];
    for (const b of names) {
      const t = st.tensors.get(`${b}.${n}`);
      if (!t) throw new CheckpointCorruptError(`${file}: optimizer state "${b}" for "${n}" is missing`);
      if (t.data.length !== size) throw new CheckpointCorruptError(`${file}: "${b}.${n}" has ${t.data.length} values, the parameter ${size}`);
      buffers[b].set(t.data, flat.offsets[k]);
    }
  });
  optimizer.restore({ step, buffers });
}
