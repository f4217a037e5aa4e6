/**
 * LoRA settings as PEFT's LoraConfig has them (Hu et al. 2021, "LoRA: Low-Rank Adaptation"; HF peft
 * src/peft/tuners/lora/config.py): which modules get an adapter pair, rank, scale, and which modules
 * are trained whole (modules_to_save). No tfjs here: the job compiler and the adapter files share it.
 *
 * Module names are Hugging Face's (q_proj, c_attn, query, ...). PEFT matches a target by suffix: a
 * module whose dotted path equals the name or ends in `.name`. For BERT `dense` that is
 * attention.output.dense, intermediate.dense, output.dense AND pooler.dense (all nn.Linear), and for
 * GPT-2 `c_proj` both attn.c_proj and mlp.c_proj; ringtune does the same.
 */
import { InputError } from '../errors.ts';
import type { Family, Task } from './config.ts';

/** The job's `lora:` section after the schema (YAML names in comments). */
export interface LoraOptions {
  r: number;
  /** lora_alpha */
  alpha: number;
  /** lora_dropout in [0, 1): dropout on the adapted layer's input, in training only (lora.ts). */
  dropout: number;
  /** target_modules; undefined = the family's PEFT default. */
  targetModules?: string[];
  /** modules_to_save; undefined = the classification head for task classification, none for causal-lm. */
  modulesToSave?: string[];
  /** use_rslora: scale alpha / sqrt(r) (Kalajdzievski 2023) instead of alpha / r. */
  useRslora: boolean;
}

export interface ResolvedLora {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
  modulesToSave: string[];
  useRslora: boolean;
  /** What B A is multiplied by: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
}

/** The linear layers of each family that can carry an adapter (last component of the HF module path). */
export const LORA_TARGETS: Readonly<Record<Family, readonly string[]>> = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
  bert: ['query', 'key', 'value', 'dense'],
};

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for these families. */
export const DEFAULT_LORA_TARGETS: Readonly<Record<Family, readonly string[]>> = {
  llama: ['q_proj', 'v_proj'],
  gpt2: ['c_attn'],
  bert: ['query', 'value'],
};

/** The classification head's module name (PEFT adds it to modules_to_save for SEQ_CLS). */
export const HEAD_MODULE: Readonly<Record<Family, string>> = { llama: 'score', gpt2: 'score', bert: 'classifier' };

export const LORA_DEFAULTS = { r: 8, alpha: 16, dropout: 0, useRslora: false } as const;

export function loraScale(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** PEFT's suffix match (check_target_module_exists for a list of names). */
export function moduleMatches(modulePath: string, name: string): boolean {
  return modulePath === name || modulePath.endsWith(`.${name}`);
}

/**
 * Fills the family defaults and checks the names; `where` leads the error (the job file, or an
 * adapter_config.json) and every problem is listed at once.
 */
export function resolveLora(family: Family, task: Task, o: LoraOptions, where: string): ResolvedLora {
  const problems: string[] = [];
  const targets = o.targetModules ?? [...DEFAULT_LORA_TARGETS[family]];
  const valid = LORA_TARGETS[family];
  const unknown = targets.filter((t) => !valid.includes(t));
  if (unknown.length) problems.push(`lora.target_modules: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a ${family} linear layer; valid names: ${valid.join(', ')}`);
  if (targets.length === 0) problems.push('lora.target_modules: empty; name at least one module');
  const saved = o.modulesToSave ?? (task === 'classification' ? [HEAD_MODULE[family]] : []);
  const clash = saved.filter((m) => targets.includes(m));
  if (clash.length) problems.push(`lora.modules_to_save: ${clash.join(', ')} ${clash.length === 1 ? 'is' : 'are'} also in lora.target_modules; a module is either adapted or trained whole`);
  if (problems.length) throw new InputError(`${where}: ${problems.length === 1 ? problems[0] : `${problems.length} problems with LoRA:\n  ${problems.join('\n  ')}`}`);
  return {
    r: o.r, alpha: o.alpha, dropout: o.dropout, targetModules: targets, modulesToSave: saved, useRslora: o.useRslora,
    scale: loraScale(o.alpha, o.r, o.useRslora),
  };
}
