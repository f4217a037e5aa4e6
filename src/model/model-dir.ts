/**
 * A Hugging Face model directory: config.json + model.safetensors (or a sharded index) + tokenizer
 * files. loadModel maps the weights through the family table; saveModel writes the same standard
 * format (canonical prefixed names, torch layouts), atomically as a whole directory.
 */
import { copyFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import { replaceDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { Rng } from '../util/rng.ts';
import { configFromHF, configToHF, taskFromArchitectures, type ModelConfig, type Task } from './config.ts';
import { Model, paramSpecs } from './model.ts';
import { initialValues } from './params.ts';
import type { HostTensor, StoredDType } from './safetensors.ts';
import { hfToInternal, internalToHF, isIgnoredKey } from './weights.ts';
import { readModelWeights, writeModelWeights } from './weights-dir.ts';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new InputError(`${file} not found: a model directory needs config.json (create one with \`ringtune model create\`)`);
  }
  try {
    const json = JSON.parse(text);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    return json;
  } catch (err) {
    throw new InputError(`${file}: invalid JSON (${(err as Error).message})`);
  }
}

export interface LoadOptions {
  /** Defaults to the task named by config.json `architectures` (BERT: classification). */
  task?: Task;
  /** Replace the label set (fine-tuning a classifier on new labels): index = id. */
  labels?: string[];
  /** Seed for heads the checkpoint lacks. */
  seed?: number;
}

export interface LoadedModel {
  model: Model;
  dir: string;
  missingHeads: string[];
  ignored: string[];
}

export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const json = await readConfigJson(dir);
  const config = configFromHF(json, join(dir, 'config.json'));
  const task = opts.task ?? taskFromArchitectures(json) ?? (config.family === 'bert' ? 'classification' : 'causal-lm');
  if (opts.labels) {
    config.numLabels = opts.labels.length;
    config.id2label = Object.fromEntries(opts.labels.map((l, i) => [i, l]));
  }
  const specs = paramSpecs(config, task);
  const weights = await readModelWeights(dir);
  const unloadable = [...weights.skipped].filter(([name]) => !isIgnoredKey(config.family, name));
  if (unloadable.length) {
    const names = unloadable.map(([n, d]) => `${n} (${d})`).join(', ');
    throw new InputError(`${dir}: tensors ${names} have dtypes ringtune cannot load; weights must be F32, F16 or BF16`);
  }
  const loaded = hfToInternal(config, specs, weights.tensors, dir);
  // A head with another label count is a new head: the checkpoint's one is dropped.
  const rng = new Rng(opts.seed ?? 0);
  for (const spec of specs) {
    const t = loaded.tensors.get(spec.name);
    if (spec.head && (!t || t.shape.join() !== spec.shape.join())) {
      loaded.tensors.set(spec.name, { shape: spec.shape, data: initialValues(spec, rng) });
      if (!loaded.missingHeads.includes(spec.name)) loaded.missingHeads.push(spec.name);
    }
  }
  return { model: Model.fromHost(config, task, loaded.tensors), dir, missingHeads: loaded.missingHeads, ignored: loaded.ignored };
}

export interface SaveOptions {
  /** Copy tokenizer.json / tokenizer_config.json / special_tokens_map.json from this directory. */
  tokenizerFrom?: string;
  dtype?: StoredDType;
  metadata?: Record<string, string>;
  maxShardBytes?: number;
}

export async function saveHostModel(dir: string, config: ModelConfig, task: Task, internal: ReadonlyMap<string, HostTensor>, opts: SaveOptions = {}): Promise<void> {
  const hf = internalToHF(config, paramSpecs(config, task), internal);
  await replaceDirAtomic(dir, async (staging) => {
    await writeModelWeights(staging, hf, { dtype: opts.dtype, metadata: { format: 'pt', ...opts.metadata }, maxShardBytes: opts.maxShardBytes });
    await writeFileAtomic(join(staging, 'config.json'), JSON.stringify(configToHF(config, task), null, 2) + '\n');
    if (opts.tokenizerFrom) {
      for (const f of TOKENIZER_FILES) {
        const src = join(opts.tokenizerFrom, f);
        if (await stat(src).then(() => true, () => false)) await copyFile(src, join(staging, f));
      }
    }
  });
}

export async function saveModel(model: Model, dir: string, opts: SaveOptions = {}): Promise<void> {
  await saveHostModel(dir, model.config, model.task, await model.toHost(), opts);
}
