/**
 * LoRA adapters on disk in HF PEFT's layout (what PeftModel.save_pretrained writes and
 * PeftModel.from_pretrained / AutoPeftModel* read):
 *   <dir>/adapter_config.json        LoraConfig as JSON (peft_type "LORA", r, lora_alpha, target_modules, ...)
 *   <dir>/adapter_model.safetensors  get_peft_model_state_dict: `base_model.model.<module>.lora_A.weight`
 *                                    [r, in] and `.lora_B.weight` [out, r] (the adapter name "default"
 *                                    stripped), modules_to_save as `base_model.model.<module>.weight`
 *                                    ("modules_to_save.default" stripped)
 *   <dir>/tokenizer.json ...         copied from the base, as PEFT users commonly do
 * <module> is the module path inside the task model, e.g. model.layers.0.self_attn.q_proj (Llama*For*),
 * transformer.h.0.attn.c_attn (GPT-2), bert.encoder.layer.0.attention.self.query (BERT), score /
 * classifier for heads. Adapters trained by PEFT on a base *Model (no *For* wrapper) lack the body
 * prefix (base_model.model.layers.0...); loading accepts both. GPT-2's Conv1D layers get the same
 * nn.Linear lora_A / lora_B (fan_in_fan_out only says the base weight is (in, out)).
 * The label names of a classifier (which PEFT leaves to the base's config.json) travel in the
 * safetensors metadata (`ringtune.id2label`), which PEFT ignores.
 */
import { copyFile, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { InputError, WeightMappingError } from '../errors.ts';
import { replaceDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { familyOf, type Task } from './config.ts';
import { requireHead, type HeadUse } from './head-check.ts';
import { LORA_TARGETS, resolveLora, type ResolvedLora } from './lora-config.ts';
import { initialAdapter, LoraAdapter, loraPlan, type HFTensorRule } from './lora.ts';
import { loadModel, readConfigJson, saveModel, TOKENIZER_FILES, type LoadedModel, type SaveOptions } from './model-dir.ts';
import type { Model } from './model.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from './safetensors.ts';
import { fromHFLayout, hfShapeOf, toHFLayout, transpose2d } from './weights.ts';

export const ADAPTER_FILES = { config: 'adapter_config.json', weights: 'adapter_model.safetensors' } as const;
const PREFIX = 'base_model.model.';
const TASK_TYPE: Record<Task, string> = { 'causal-lm': 'CAUSAL_LM', classification: 'SEQ_CLS' };

const exists = (p: string) => stat(p).then(() => true, () => false);

export async function isAdapterDir(dir: string): Promise<boolean> {
  return exists(join(dir, ADAPTER_FILES.config));
}

/** A fresh adapter (PEFT's init: A uniform, B = 0) attached to `model`; `where` names the job file in errors. */
export function attachNewAdapter(model: Model, lora: ResolvedLora, seed: number, where: string): LoraAdapter {
  const plan = loraPlan(model.config, model.task, model.specs, lora, where);
  const adapter = new LoraAdapter(lora, plan.targets, plan.saved, initialAdapter(plan.targets, lora.r, seed), model);
  model.attachAdapter(adapter);
  return adapter;
}

// ---------------------------------------------------------------- internal <-> PEFT tensors


/** PEFT state dict of the adapter from its trainable values in internal layout (Model.trainable order). */
export function peftTensors(adapter: LoraAdapter, values: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const t of adapter.targets) {
    out.set(`${PREFIX}${t.module}.lora_A.weight`, transpose2d(values.get(t.a)!)); // (in, r) -> [r, in]
    out.set(`${PREFIX}${t.module}.lora_B.weight`, transpose2d(values.get(t.b)!)); // (r, out) -> [out, r]
  }
  for (const rule of adapter.saved) out.set(PREFIX + rule.hf, toHFLayout(rule.layout, rule.internal.map((n) => values.get(n)!)));
  return out;
}

export function adapterConfigJson(model: Model, lora: ResolvedLora, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: TASK_TYPE[model.task],
    base_model_name_or_path: baseModel,
    revision: null,
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: lora.targetModules,
    modules_to_save: lora.modulesToSave.length ? lora.modulesToSave : null,
    fan_in_fan_out: model.config.family === 'gpt2',
    bias: 'none',
    use_rslora: lora.useRslora,
    use_dora: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
}

export interface AdapterSaveOptions {
  /** adapter_config.json base_model_name_or_path. */
  baseModel: string;
  tokenizerFrom?: string;
  metadata?: Record<string, string>;
  /** Trainable values in internal layout; default: the model's current variables. */
  values?: ReadonlyMap<string, HostTensor>;
}

/** Writes `dir` (replaced atomically as a whole) in PEFT's layout. */
export async function saveAdapter(model: Model, dir: string, o: AdapterSaveOptions): Promise<void> {
  const adapter = model.adapter;
  if (!adapter) throw new InputError('saveAdapter: the model has no adapter');
  let values = o.values;
  if (!values) {
    const host = new Map<string, HostTensor>();
    for (const [name, v] of adapter.trainable.params) host.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    values = host;
  }
  const tensors = peftTensors(adapter, values);
  const metadata: Record<string, string> = { format: 'pt', ...o.metadata };
  if (model.task === 'classification') metadata['ringtune.id2label'] = JSON.stringify(model.config.id2label);
  await replaceDirAtomic(dir, async (staging) => {
    await writeSafetensors(join(staging, ADAPTER_FILES.weights), tensors, { metadata });
    await writeFileAtomic(join(staging, ADAPTER_FILES.config), JSON.stringify(adapterConfigJson(model, adapter.lora, o.baseModel), null, 2) + '\n');
    if (o.tokenizerFrom) {
      for (const f of TOKENIZER_FILES) {
        const src = join(o.tokenizerFrom, f);
        if (await exists(src)) await copyFile(src, join(staging, f));
      }
    }
  });
}

/** The trained model as a run's final output: the adapter directory with LoRA, else the full model. */
export async function saveTrained(model: Model, dir: string, o: SaveOptions & { baseModel: string }): Promise<void> {
  if (model.adapter) await saveAdapter(model, dir, { baseModel: o.baseModel, tokenizerFrom: o.tokenizerFrom, metadata: o.metadata });
  else await saveModel(model, dir, o);
}

// ---------------------------------------------------------------- reading

export interface AdapterConfig {
  file: string;
  task: Task;
  baseModel?: string;
  lora: ResolvedLora;
}

/** Reads and validates adapter_config.json: only what ringtune computes exactly is accepted. */
export async function readAdapterConfig(dir: string, family: Model['config']['family']): Promise<AdapterConfig> {
  const file = join(dir, ADAPTER_FILES.config);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new InputError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found: an adapter directory needs adapter_config.json' : `invalid JSON (${(err as Error).message})`}`);
  }
  const problems: string[] = [];
  const bad = (field: string, why: string) => problems.push(`${field}: ${why}`);
  if (json.peft_type !== 'LORA') bad('peft_type', `${JSON.stringify(json.peft_type)}; ringtune loads only "LORA" adapters`);
  if (json.bias !== undefined && json.bias !== 'none') bad('bias', `${JSON.stringify(json.bias)}; only "none" is supported`);
  if (json.use_dora) bad('use_dora', 'DoRA adapters are not supported');
  for (const f of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = json[f];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v as object).length)) bad(f, 'per-module ranks / alphas are not supported');
  }
  if (json.layers_to_transform !== undefined && json.layers_to_transform !== null) bad('layers_to_transform', 'adapting a subset of layers is not supported');
  const r = json.r;
  if (!Number.isInteger(r) || (r as number) < 1) bad('r', `${JSON.stringify(r)}; expected a positive integer`);
  const alpha = json.lora_alpha ?? 8;
  if (typeof alpha !== 'number') bad('lora_alpha', `${JSON.stringify(alpha)}; expected a number`);
  const targets = json.target_modules;
  if (!Array.isArray(targets) || targets.some((t) => typeof t !== 'string')) {
    bad('target_modules', `${JSON.stringify(targets)}; expected a list of module names (a regex string is not supported); ${family} names: ${LORA_TARGETS[family].join(', ')}`);
  }
  const saved = json.modules_to_save ?? null;
  if (saved !== null && (!Array.isArray(saved) || saved.some((t) => typeof t !== 'string'))) bad('modules_to_save', `${JSON.stringify(saved)}; expected a list of module names or null`);
  const taskType = json.task_type;
  const task = taskType === 'SEQ_CLS' ? 'classification' : taskType === 'CAUSAL_LM' ? 'causal-lm' : undefined;
  if (!task) bad('task_type', `${JSON.stringify(taskType)}; expected "CAUSAL_LM" or "SEQ_CLS"`);
  if (problems.length) throw new InputError(`${file}: ${problems.join('; ')}`);
  // lora_dropout only acts in training: an adapter trained with dropout loads for inference as it is.
  const lora = resolveLora(family, task!, {
    r: r as number, alpha: alpha as number, dropout: 0, targetModules: targets as string[], modulesToSave: (saved as string[] | null) ?? [], useRslora: json.use_rslora === true,
  }, file);
  lora.dropout = typeof json.lora_dropout === 'number' ? json.lora_dropout : 0;
  const base = json.base_model_name_or_path;
  return { file, task: task!, baseModel: typeof base === 'string' && base ? base : undefined, lora };
}

/** The adapter's tensors, checked against the base: every key known, every shape matching. */
export async function readAdapterTensors(model: Model, dir: string, cfg: AdapterConfig): Promise<{ adapter: LoraAdapter; saved: Map<string, HostTensor> }> {
  const file = join(dir, ADAPTER_FILES.weights);
  if (!(await exists(file))) throw new InputError(`${file} not found: an adapter directory needs adapter_model.safetensors (adapter_model.bin pickles are not read)`);
  const st = await readSafetensors(file);
  const plan = loraPlan(model.config, model.task, model.specs, cfg.lora, cfg.file);
  const specs = new Map(model.specs.map((s) => [s.name, s]));
  const r = cfg.lora.r;
  // Expected PEFT key (canonical and without the body prefix) -> where its values go.
  interface Slot { key: string; shape: number[]; put: (t: HostTensor) => void }
  const values = new Map<string, HostTensor>();
  const saved = new Map<string, HostTensor>();
  const slots = new Map<string, Slot>();
  const add = (module: string, bodyModule: string, leaf: string, shape: number[], put: (t: HostTensor) => void) => {
    const slot = { key: `${PREFIX}${module}.${leaf}`, shape, put };
    slots.set(slot.key, slot);
    slots.set(`${PREFIX}${bodyModule}.${leaf}`, slot);
  };
  for (const t of plan.targets) {
    add(t.module, t.bodyModule, 'lora_A.weight', [r, t.inFeatures], (x) => values.set(t.a, transpose2d(x)));
    add(t.module, t.bodyModule, 'lora_B.weight', [t.outFeatures, r], (x) => values.set(t.b, transpose2d(x)));
  }
  for (const rule of plan.saved) {
    const shapes = rule.internal.map((n) => specs.get(n)!.shape);
    const leaf = rule.hf.slice(rule.module.length + 1);
    add(rule.module, rule.bodyModule, leaf, hfShapeOf(rule.layout, shapes), (x) => fromHFLayout(rule.layout, x, shapes.length).forEach((p, k) => saved.set(rule.internal[k], p)));
  }
  const unknown: string[] = [];
  const badShape: string[] = [];
  const seen = new Set<Slot>();
  for (const [key, t] of st.tensors) {
    const slot = slots.get(key);
    if (!slot) { unknown.push(key); continue; }
    if (slot.shape.join() !== t.shape.join()) { badShape.push(`${key} has shape [${t.shape}] in ${file} but the base model needs [${slot.shape}]`); continue; }
    seen.add(slot);
    slot.put(t);
  }
  const missing = [...new Set(slots.values())].filter((s) => !seen.has(s)).map((s) => s.key);
  const problems: string[] = [];
  const list = (names: string[]) => names.slice(0, 10).join(', ') + (names.length > 10 ? `, ... (${names.length} in all)` : '');
  if (unknown.length) problems.push(`keys not in this ${model.config.family} model (${model.config.nLayers} layers) with target_modules [${cfg.lora.targetModules.join(', ')}]: ${list(unknown)}`);
  if (missing.length) problems.push(`missing keys: ${list(missing)}`);
  problems.push(...badShape);
  if (problems.length) {
    const other = seen.size === 0 ? ' (the adapter was trained on another model family or size than this base)' : '';
    throw new WeightMappingError(`${file}: the adapter does not fit the base model${other}:\n  ${problems.join('\n  ')}`);
  }
  return { adapter: new LoraAdapter(cfg.lora, plan.targets, plan.saved, values, model), saved };
}

/** Attaches the adapter in `dir` to `model` (its modules_to_save replace the base's tensors). */
export async function loadAdapter(model: Model, dir: string, cfg?: AdapterConfig): Promise<LoraAdapter> {
  const c = cfg ?? (await readAdapterConfig(dir, model.config.family));
  if (c.task !== model.task) throw new InputError(`${c.file}: task_type ${TASK_TYPE[c.task]} does not fit a ${model.task} model (${TASK_TYPE[model.task]})`);
  const { adapter, saved } = await readAdapterTensors(model, dir, c);
  for (const [name, t] of saved) {
    const v = model.params.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
  }
  model.attachAdapter(adapter);
  return adapter;
}

/** Label names a ringtune classifier adapter carries in its safetensors metadata. */
async function adapterLabels(dir: string): Promise<string[] | undefined> {
  const st = await readSafetensors(join(dir, ADAPTER_FILES.weights)).catch(() => undefined);
  const raw = st?.metadata['ringtune.id2label'];
  if (!raw) return undefined;
  const map = JSON.parse(raw) as Record<string, string>;
  return Object.keys(map).sort((a, b) => Number(a) - Number(b)).map((k) => map[k]);
}

/**
 * `--model DIR [--adapter DIR]` of generate / serve / eval / classify: the base directory and the
 * adapter directory. A --model that is itself an adapter directory names its base in
 * base_model_name_or_path (as AutoPeftModel reads it): a local directory (as given, or relative to
 * the adapter), else what `resolveBase` makes of it (the CLI resolves hub ids).
 */
export async function resolveModelArgs(model: string, adapter?: string, resolveBase?: (name: string) => Promise<string>): Promise<{ base: string; adapter?: string }> {
  if (adapter !== undefined) {
    if (!(await isAdapterDir(adapter))) throw new InputError(`--adapter ${adapter}: no ${ADAPTER_FILES.config} there; an adapter directory is what a LoRA run writes to <output>/final`);
    if (await isAdapterDir(model)) throw new InputError(`--model ${model} is an adapter directory; give the base model with --model and the adapter with --adapter`);
    return { base: model, adapter };
  }
  if (!(await isAdapterDir(model))) return { base: model };
  const file = join(model, ADAPTER_FILES.config);
  const json = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as { base_model_name_or_path?: unknown };
  const named = typeof json.base_model_name_or_path === 'string' ? json.base_model_name_or_path : '';
  for (const candidate of named ? [named, isAbsolute(named) ? named : resolve(model, named)] : []) {
    if (await exists(join(candidate, 'config.json'))) return { base: candidate, adapter: model };
  }
  if (named && resolveBase) {
    const base = await resolveBase(named);
    if (await exists(join(base, 'config.json'))) return { base, adapter: model };
  }
  throw new InputError(`--model ${model} is an adapter directory whose base (${file} base_model_name_or_path ${JSON.stringify(named)}) is not a model directory; pass the base with --model and this directory with --adapter`);
}

/**
 * Loads base + adapter for inference and merges them (W + scale * A @ B, the training forward's own
 * arithmetic, so the outputs are those of the unmerged adapter, bit for bit, at the base's speed).
 * The task is the adapter's task_type; with `needs` the head is checked as loadModelWithHead does.
 */
export async function loadWithAdapter(base: string, adapterDir: string, needs?: { task: Task; use: HeadUse }, o: { labels?: string[] } = {}): Promise<LoadedModel> {
  const family = familyOf(await readConfigJson(base), join(base, 'config.json'));
  const cfg = await readAdapterConfig(adapterDir, family);
  if (needs && cfg.task !== needs.task) {
    throw new InputError(`${adapterDir} is a ${TASK_TYPE[cfg.task]} adapter: ${needs.use.command} needs a ${TASK_TYPE[needs.task]} one. Use ${needs.use.otherCommand} for it`);
  }
  const own = cfg.task === 'classification' ? await adapterLabels(adapterDir) : undefined;
  if (own && o.labels && own.join('\n') !== o.labels.join('\n')) {
    throw new InputError(`${adapterDir}: the adapter's labels [${own.join(', ')}] differ from the data's [${o.labels.join(', ')}]`);
  }
  const loaded = await loadModel(base, { task: cfg.task, labels: own ?? o.labels });
  try {
    const adapter = await loadAdapter(loaded.model, adapterDir, cfg);
    // A head the base lacked is fine when the adapter brings it (modules_to_save).
    const missing = loaded.missingHeads.filter((h) => !adapter.trainable.params.has(h));
    if (needs) requireHead(loaded.model, `${base} + adapter ${adapterDir}`, needs.task, needs.use, missing);
    loaded.model.mergeAdapter();
    return { ...loaded, missingHeads: missing };
  } catch (err) {
    loaded.model.dispose();
    throw err;
  }
}

/** Where an adapter run's tokenizer is: copied next to the adapter, else the base's. */
export async function tokenizerDir(base: string, adapter?: string): Promise<string> {
  return adapter && (await exists(join(adapter, 'tokenizer.json'))) ? adapter : base;
}

/**
 * `ringtune merge`: base + adapter -> a full Hugging Face model directory (W += scale * B A in HF
 * layout, modules_to_save replacing the base's tensors), written atomically; an existing `output`
 * is replaced only with `overwrite`.
 */
export async function mergeToDir(base: string, adapterDir: string, output: string, overwrite = false): Promise<{ task: Task; targets: number }> {
  if (!overwrite && (await exists(output))) throw new InputError(`--output ${output} exists; pass --overwrite to replace it`);
  if (!(await isAdapterDir(adapterDir))) throw new InputError(`--adapter ${adapterDir}: no ${ADAPTER_FILES.config} there`);
  const family = familyOf(await readConfigJson(base), join(base, 'config.json'));
  const cfg = await readAdapterConfig(adapterDir, family);
  const labels = cfg.task === 'classification' ? await adapterLabels(adapterDir) : undefined;
  const { model } = await loadModel(base, { task: cfg.task, labels });
  try {
    const adapter = await loadAdapter(model, adapterDir, cfg);
    const targets = adapter.targets.length;
    model.mergeAdapter();
    const tokenizerFrom = await tokenizerDir(base, adapterDir);
    await saveModel(model, output, { tokenizerFrom, metadata: { ringtune: `merged ${base} + LoRA ${adapterDir}` } });
    return { task: cfg.task, targets };
  } finally {
    model.dispose();
  }
}
