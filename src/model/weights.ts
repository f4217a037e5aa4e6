/**
 * Hugging Face state dict <-> internal parameters, driven by the family's key table.
 * Loading accepts names with or without the body prefix (`transformer.`, `model.`, `bert.`), as
 * found on the hub for *ForCausalLM and base *Model checkpoints. Unknown keys, missing keys and
 * wrong shapes are WeightMappingErrors that list every offending name at once.
 */
import { WeightMappingError } from '../errors.ts';
import type { Family, ModelConfig } from './config.ts';
import { BERT_KEYS } from './hf-keys/bert.ts';
import { GPT2_KEYS } from './hf-keys/gpt2.ts';
import { LLAMA_KEYS } from './hf-keys/llama.ts';
import type { FamilyKeys, Layout } from './hf-keys/types.ts';
import { numel, type ParamSpec } from './params.ts';
import type { HostTensor } from './safetensors.ts';

export const KEY_TABLES: Record<Family, FamilyKeys> = { gpt2: GPT2_KEYS, llama: LLAMA_KEYS, bert: BERT_KEYS };

export interface ConcreteRule {
  hf: string; // full canonical name (with prefix for body keys)
  bodyName: string; // name without prefix
  top: boolean;
  internal: string[];
  layout: Layout;
  /** The layer index `{i}` stood for; -1 for a rule outside the layers. */
  layer: number;
}

/**
 * Expands `{i}` for every layer and keeps the rules whose internal names the model has, in table
 * order (each rule for every layer before the next rule).
 */
export function concreteRules(cfg: ModelConfig, specs: ReadonlyMap<string, ParamSpec>): ConcreteRule[] {
  const table = KEY_TABLES[cfg.family];
  const out: ConcreteRule[] = [];
  for (const rule of table.rules) {
    const layers = rule.hf.includes('{i}') ? [...Array(cfg.nLayers).keys()] : [-1];
    for (const i of layers) {
      const sub = (s: string) => s.replaceAll('{i}', String(i));
      const internal = (typeof rule.internal === 'string' ? [rule.internal] : [...rule.internal]).map(sub);
      if (!internal.every((n) => specs.has(n))) continue;
      const bodyName = sub(rule.hf);
      out.push({ hf: rule.top ? bodyName : table.prefix + bodyName, bodyName, top: !!rule.top, internal, layout: rule.layout, layer: i });
    }
  }
  return out;
}

/** Shape of the HF tensor that holds these internal specs. */
function hfShape(rule: ConcreteRule, specs: ReadonlyMap<string, ParamSpec>): number[] {
  return hfShapeOf(rule.layout, rule.internal.map((n) => specs.get(n)!.shape));
}

/** Shape of the HF tensor of `layout` whose internal parts have these shapes. */
export function hfShapeOf(layout: Layout, shapes: readonly number[][]): number[] {
  if (layout === 'same') return shapes[0];
  if (layout === 'transpose') return shapes[0].length === 2 ? [shapes[0][1], shapes[0][0]] : shapes[0];
  const s = shapes[0];
  return s.length === 2 ? [s[0], s[1] * shapes.length] : [s[0] * shapes.length];
}

/** An HF tensor -> its internal parts (one, or k for split-cols), in ringtune's layouts. */
export function fromHFLayout(layout: Layout, t: HostTensor, k: number): HostTensor[] {
  if (layout === 'split-cols') return splitCols(t, k);
  return [layout === 'transpose' && t.shape.length === 2 ? transpose2d(t) : t];
}

/** Internal parts -> the HF tensor of `layout`. */
export function toHFLayout(layout: Layout, parts: HostTensor[]): HostTensor {
  if (layout === 'split-cols') return concatCols(parts);
  return layout === 'transpose' && parts[0].shape.length === 2 ? transpose2d(parts[0]) : parts[0];
}

/** A 2-D host tensor transposed ((rows, cols) -> (cols, rows)). */
export function transpose2d(t: HostTensor): HostTensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data: out };
}

/** (rows, k*cols) -> k tensors (rows, cols); a 1-D (k*n) -> k tensors (n). */
function splitCols(t: HostTensor, k: number): HostTensor[] {
  const rows = t.shape.length === 2 ? t.shape[0] : 1;
  const total = t.shape.length === 2 ? t.shape[1] : t.shape[0];
  const cols = total / k;
  return [...Array(k).keys()].map((part) => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) out.set(t.data.subarray(r * total + part * cols, r * total + (part + 1) * cols), r * cols);
    return { shape: t.shape.length === 2 ? [rows, cols] : [cols], data: out };
  });
}

function concatCols(parts: HostTensor[]): HostTensor {
  const rows = parts[0].shape.length === 2 ? parts[0].shape[0] : 1;
  const cols = parts[0].shape.length === 2 ? parts[0].shape[1] : parts[0].shape[0];
  const total = cols * parts.length;
  const out = new Float32Array(rows * total);
  parts.forEach((p, k) => {
    for (let r = 0; r < rows; r++) out.set(p.data.subarray(r * cols, (r + 1) * cols), r * total + k * cols);
  });
  return { shape: parts[0].shape.length === 2 ? [rows, total] : [total], data: out };
}

/** Buffers and heads that carry no trainable state (position_ids, old attention-mask buffers, cls.*). */
export function isIgnoredKey(family: Family, key: string): boolean {
  const table = KEY_TABLES[family];
  const body = key.startsWith(table.prefix) ? key.slice(table.prefix.length) : key;
  return table.ignore.some((re) => re.test(body) || re.test(key));
}

export interface LoadedWeights {
  tensors: Map<string, HostTensor>;
  /** Head parameters the checkpoint did not have (a base model loaded for a new task): init them. */
  missingHeads: string[];
  /** Checkpoint tensors deliberately not used (buffers, another task's head). */
  ignored: string[];
}

const list = (names: string[]) => names.slice(0, 20).join(', ') + (names.length > 20 ? `, ... (${names.length} in all)` : '');

export function hfToInternal(cfg: ModelConfig, specList: readonly ParamSpec[], hf: ReadonlyMap<string, HostTensor>, source: string): LoadedWeights {
  const specs = new Map(specList.map((s) => [s.name, s]));
  const table = KEY_TABLES[cfg.family];
  const rules = concreteRules(cfg, specs);
  const byBody = new Map(rules.filter((r) => !r.top).map((r) => [r.bodyName, r]));
  const byTop = new Map(rules.filter((r) => r.top).map((r) => [r.bodyName, r]));
  // Heads of other tasks (lm_head when classifying, score when generating) are ignored, not unknown.
  const allTop = new Set(table.rules.filter((r) => r.top).map((r) => r.hf));
  const tensors = new Map<string, HostTensor>();
  const unknown: string[] = [];
  const badShape: string[] = [];
  const ignored: string[] = [];
  for (const [key, t] of hf) {
    const body = key.startsWith(table.prefix) ? key.slice(table.prefix.length) : key;
    const rule = byTop.get(key) ?? byBody.get(body);
    if (!rule) {
      if (allTop.has(key) || isIgnoredKey(cfg.family, key)) ignored.push(key);
      else unknown.push(key);
      continue;
    }
    const want = hfShape(rule, specs);
    if (want.length !== t.shape.length || want.some((n, i) => n !== t.shape[i])) {
      badShape.push(`${key} has shape [${t.shape}] but the config needs [${want}]`);
      continue;
    }
    const parts = fromHFLayout(rule.layout, t, rule.internal.length);
    rule.internal.forEach((name, k) => tensors.set(name, parts[k]));
  }
  const absent = specList.filter((s) => !tensors.has(s.name));
  const missing = absent.filter((s) => !s.head && !s.optional).map((s) => rules.find((r) => r.internal.includes(s.name))?.hf ?? s.name);
  const problems: string[] = [];
  if (unknown.length) problems.push(`unknown tensors (not in the ${cfg.family} table): ${list(unknown)}`);
  if (missing.length) problems.push(`missing tensors: ${list([...new Set(missing)])}`);
  if (badShape.length) problems.push(...badShape);
  if (problems.length) throw new WeightMappingError(`${source}: weights do not match the ${cfg.family} config:\n  ${problems.join('\n  ')}`);
  return { tensors, missingHeads: absent.filter((s) => s.head).map((s) => s.name), ignored };
}

/** Internal tensors -> HF names (canonical, prefixed) and layouts, in table order. */
export function internalToHF(cfg: ModelConfig, specList: readonly ParamSpec[], internal: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const specs = new Map(specList.filter((s) => internal.has(s.name)).map((s) => [s.name, s]));
  const out = new Map<string, HostTensor>();
  for (const rule of concreteRules(cfg, specs)) {
    const parts = rule.internal.map((n) => internal.get(n)!);
    for (const [n, p] of rule.internal.map((n, k) => [n, parts[k]] as const)) {
      if (numel(p.shape) !== p.data.length) throw new WeightMappingError(`internal tensor ${n} has ${p.data.length} values for shape [${p.shape}]`);
    }
    out.set(rule.hf, toHFLayout(rule.layout, parts));
  }
  return out;
}
