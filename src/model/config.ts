/**
 * Hugging Face config.json <-> ModelConfig. One flat, family-tagged config with units/meaning in the
 * names, so layers never read raw HF keys. Unknown architectures, missing required fields and sizes
 * that are not positive integers or are absurdly large are InputErrors naming config.json and the key,
 * raised before anything is allocated.
 */
import { InputError } from '../errors.ts';

export type Family = 'gpt2' | 'llama' | 'bert';
export type Task = 'causal-lm' | 'classification';
export type Activation = 'gelu_new' | 'gelu' | 'silu';

export interface ModelConfig {
  family: Family;
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Grouped-query attention: query head h reads kv head floor(h / (nHeads / nKvHeads)). */
  nKvHeads: number;
  headDim: number;
  dFF: number;
  maxPositions: number;
  normEps: number;
  activation: Activation;
  /** Llama only: rotary base; 0 for learned positions. */
  ropeTheta: number;
  tieEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  /** BERT token types; 0 elsewhere. */
  typeVocabSize: number;
  numLabels: number;
  id2label: Record<number, string>;
  padTokenId?: number;
  bosTokenId?: number;
  eosTokenId?: number;
}

type Json = Record<string, unknown>;

/** The ModelConfig fields that size tensors; each must be a positive integer within SIZE_LIMITS. */
export type SizeField = 'vocabSize' | 'dModel' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'headDim' | 'dFF' | 'maxPositions' | 'typeVocabSize' | 'numLabels';

/**
 * The config.json key of each size field, per family (Hugging Face names them differently). A field a
 * family does not list is derived (GPT-2's head_dim = n_embd / n_head) and checked through its sources.
 * Error messages and the memory estimate (src/config/memory.ts) name keys from this table.
 */
export const HF_SIZE_KEYS = {
  gpt2: { vocabSize: 'vocab_size', dModel: 'n_embd', nLayers: 'n_layer', nHeads: 'n_head', dFF: 'n_inner', maxPositions: 'n_positions', numLabels: 'num_labels' },
  llama: {
    vocabSize: 'vocab_size', dModel: 'hidden_size', nLayers: 'num_hidden_layers', nHeads: 'num_attention_heads', nKvHeads: 'num_key_value_heads',
    headDim: 'head_dim', dFF: 'intermediate_size', maxPositions: 'max_position_embeddings', numLabels: 'num_labels',
  },
  bert: {
    vocabSize: 'vocab_size', dModel: 'hidden_size', nLayers: 'num_hidden_layers', nHeads: 'num_attention_heads', dFF: 'intermediate_size',
    maxPositions: 'max_position_embeddings', typeVocabSize: 'type_vocab_size', numLabels: 'num_labels',
  },
} as const satisfies Record<Family, Partial<Record<SizeField, string>>>;

/** The config.json key behind a size field of `family`, or a description of how it is derived. */
export function hfKey(family: Family, f: SizeField): string {
  const keys: Partial<Record<SizeField, string>> = HF_SIZE_KEYS[family];
  return keys[f] ?? (f === 'nKvHeads' ? keys.nHeads! : f === 'headDim' ? `${keys.dModel} / ${keys.nHeads}` : f);
}

/**
 * Upper bounds on config.json sizes, far above any published checkpoint (the largest dense models
 * have d 16,384, 126 layers, 128 heads, dFF 53,248 (Llama 3.1 405B), vocabularies of ~256k (Gemma) and
 * ~10M positions (Llama 4 Scout)). A value past one is a typo or a unit slip (`1e6` layers, `1e9`
 * positions): rejected here, before a loop over layers or a position table tries to allocate it.
 * Sizes within the limits can still be too large for the machine: src/config/memory.ts checks that.
 */
export const SIZE_LIMITS: Readonly<Record<SizeField, number>> = {
  vocabSize: 2 ** 22,
  dModel: 2 ** 16,
  nLayers: 2 ** 12,
  nHeads: 2 ** 12,
  nKvHeads: 2 ** 12,
  headDim: 2 ** 12,
  dFF: 2 ** 20,
  maxPositions: 2 ** 24,
  typeVocabSize: 2 ** 16,
  numLabels: 2 ** 20,
};

function sizeProblem(key: string, v: unknown, limit: number): string | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return `"${key}" must be a positive integer, got ${JSON.stringify(v)}`;
  if (v > limit) return `"${key}" is ${v}, above ringtune's limit of ${limit} (no published model comes near it: a typo?)`;
  return undefined;
}

/** Every size problem of a parsed config at once, each naming its config.json key. */
function sizeProblems(cfg: ModelConfig, json: Json): string[] {
  const key = (f: SizeField) => hfKey(cfg.family, f);
  // Keys present in the file; absent ones were derived from them (checked below) or defaulted.
  const given = Object.entries(HF_SIZE_KEYS[cfg.family]).filter(([, k]) => json[k] !== undefined && json[k] !== null) as Array<[SizeField, string]>;
  const problems = given.map(([f, k]) => sizeProblem(k, cfg[f], SIZE_LIMITS[f])).filter((p): p is string => p !== undefined);
  if (problems.length) return problems;
  // Derived sizes: GPT-2 and BERT split d into heads; Llama may too (when head_dim is absent).
  if (!Number.isInteger(cfg.headDim)) problems.push(`"${key('dModel')}" ${cfg.dModel} is not divisible by "${key('nHeads')}" ${cfg.nHeads}`);
  if (cfg.nHeads % cfg.nKvHeads !== 0) problems.push(`"${key('nHeads')}" ${cfg.nHeads} is not a multiple of "${key('nKvHeads')}" ${cfg.nKvHeads}`);
  return problems;
}

function checkSizes(cfg: ModelConfig, json: Json, file: string): ModelConfig {
  const problems = sizeProblems(cfg, json);
  if (problems.length === 1) throw new InputError(`${file}: field ${problems[0]}`);
  if (problems.length > 1) throw new InputError(`${file}: ${problems.length} problems:\n${problems.map((p) => `  field ${p}`).join('\n')}`);
  return cfg;
}

function field<T>(json: Json, file: string, key: string, kind: 'number' | 'string' | 'boolean', fallback?: T): T {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new InputError(`${file}: missing required field "${key}"`);
  }
  if (typeof v !== kind) throw new InputError(`${file}: field "${key}" must be a ${kind}, got ${JSON.stringify(v)}`);
  if (kind === 'number' && !Number.isFinite(v as number)) throw new InputError(`${file}: field "${key}" must be finite`);
  return v as T;
}

function firstId(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return undefined;
}

function labels(json: Json, file: string): { numLabels: number; id2label: Record<number, string> } {
  const raw = json.id2label as Record<string, string> | undefined;
  const id2label: Record<number, string> = {};
  if (raw && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) id2label[Number(k)] = String(v);
  const numLabels = typeof json.num_labels === 'number' ? json.num_labels : Object.keys(id2label).length || 2;
  // Checked before the loop below runs num_labels times.
  const bad = sizeProblem('num_labels', numLabels, SIZE_LIMITS.numLabels);
  if (bad) throw new InputError(`${file}: field ${bad}`);
  for (let i = 0; i < numLabels; i++) id2label[i] ??= `LABEL_${i}`;
  return { numLabels, id2label };
}

export function familyOf(json: Json, file = 'config.json'): Family {
  const modelType = json.model_type;
  if (modelType === 'gpt2') return 'gpt2';
  if (modelType === 'bert') return 'bert';
  // Qwen2, Mistral and SmolLM checkpoints share Llama's layout (attention biases optional).
  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2') return 'llama';
  throw new InputError(
    `${file}: unsupported model_type ${JSON.stringify(modelType)}; ringtune supports gpt2, llama (also mistral, qwen2) and bert`,
  );
}

export function configFromHF(json: Json, file = 'config.json'): ModelConfig {
  const family = familyOf(json, file);
  const n = (key: string, fallback?: number) => field<number>(json, file, key, 'number', fallback);
  const common = {
    ...labels(json, file),
    padTokenId: firstId(json.pad_token_id),
    bosTokenId: firstId(json.bos_token_id),
    eosTokenId: firstId(json.eos_token_id),
  };
  if (family === 'gpt2') {
    const dModel = n('n_embd');
    const nHeads = n('n_head');
    const act = field<string>(json, file, 'activation_function', 'string', 'gelu_new');
    if (act !== 'gelu_new' && act !== 'gelu') throw new InputError(`${file}: activation_function "${act}" is not supported (gelu_new, gelu)`);
    return checkSizes({
      family, vocabSize: n('vocab_size'), dModel, nLayers: n('n_layer'), nHeads, nKvHeads: nHeads,
      headDim: dModel / nHeads, dFF: typeof json.n_inner === 'number' ? json.n_inner : 4 * dModel,
      maxPositions: n('n_positions', 1024), normEps: n('layer_norm_epsilon', 1e-5), activation: act,
      ropeTheta: 0, tieEmbeddings: json.tie_word_embeddings !== false, attentionBias: true, mlpBias: true,
      typeVocabSize: 0, ...common,
    }, json, file);
  }
  if (family === 'llama') {
    const dModel = n('hidden_size');
    const nHeads = n('num_attention_heads');
    const act = field<string>(json, file, 'hidden_act', 'string', 'silu');
    if (act !== 'silu') throw new InputError(`${file}: hidden_act "${act}" is not supported for llama (silu)`);
    return checkSizes({
      family, vocabSize: n('vocab_size'), dModel, nLayers: n('num_hidden_layers'), nHeads,
      nKvHeads: n('num_key_value_heads', nHeads), headDim: n('head_dim', dModel / nHeads),
      dFF: n('intermediate_size'), maxPositions: n('max_position_embeddings', 2048),
      normEps: n('rms_norm_eps', 1e-6), activation: 'silu', ropeTheta: n('rope_theta', 10000),
      tieEmbeddings: field<boolean>(json, file, 'tie_word_embeddings', 'boolean', false),
      // Qwen2 has q/k/v biases but no o_proj bias; it is expressed by the weights present, see hf-keys.
      attentionBias: field<boolean>(json, file, 'attention_bias', 'boolean', json.model_type === 'qwen2'),
      mlpBias: field<boolean>(json, file, 'mlp_bias', 'boolean', false), typeVocabSize: 0, ...common,
    }, json, file);
  }
  const dModel = n('hidden_size');
  const nHeads = n('num_attention_heads');
  const act = field<string>(json, file, 'hidden_act', 'string', 'gelu');
  if (act !== 'gelu' && act !== 'gelu_new') throw new InputError(`${file}: hidden_act "${act}" is not supported for bert (gelu, gelu_new)`);
  return checkSizes({
    family, vocabSize: n('vocab_size'), dModel, nLayers: n('num_hidden_layers'), nHeads, nKvHeads: nHeads,
    headDim: dModel / nHeads, dFF: n('intermediate_size'), maxPositions: n('max_position_embeddings', 512),
    normEps: n('layer_norm_eps', 1e-12), activation: act, ropeTheta: 0, tieEmbeddings: false,
    attentionBias: true, mlpBias: true, typeVocabSize: n('type_vocab_size', 2), ...common,
  }, json, file);
}

/** Hugging Face architecture class for a family and task (written to config.json `architectures`). */
export function architectureName(family: Family, task: Task): string {
  const base = { gpt2: 'GPT2', llama: 'Llama', bert: 'Bert' }[family];
  if (task === 'classification') return `${base}ForSequenceClassification`;
  if (family === 'bert') throw new InputError('bert supports only the classification task (BertForSequenceClassification)');
  return family === 'gpt2' ? 'GPT2LMHeadModel' : 'LlamaForCausalLM';
}

export function taskFromArchitectures(json: Json): Task | undefined {
  const arch = Array.isArray(json.architectures) ? String(json.architectures[0]) : '';
  if (arch.endsWith('ForSequenceClassification')) return 'classification';
  if (arch.endsWith('LMHeadModel') || arch.endsWith('ForCausalLM')) return 'causal-lm';
  return undefined;
}

export function configToHF(cfg: ModelConfig, task: Task): Json {
  const label2id = Object.fromEntries(Object.entries(cfg.id2label).map(([k, v]) => [v, Number(k)]));
  const labelsJson = task === 'classification' ? { num_labels: cfg.numLabels, id2label: cfg.id2label, label2id } : {};
  const ids = { pad_token_id: cfg.padTokenId, bos_token_id: cfg.bosTokenId, eos_token_id: cfg.eosTokenId };
  const architectures = [architectureName(cfg.family, task)];
  if (cfg.family === 'gpt2') {
    return {
      architectures, model_type: 'gpt2', vocab_size: cfg.vocabSize, n_embd: cfg.dModel, n_layer: cfg.nLayers,
      n_head: cfg.nHeads, n_inner: cfg.dFF, n_positions: cfg.maxPositions, n_ctx: cfg.maxPositions,
      layer_norm_epsilon: cfg.normEps, activation_function: cfg.activation, tie_word_embeddings: cfg.tieEmbeddings,
      torch_dtype: 'float32', ...ids, ...labelsJson,
    };
  }
  if (cfg.family === 'llama') {
    return {
      architectures, model_type: 'llama', vocab_size: cfg.vocabSize, hidden_size: cfg.dModel,
      intermediate_size: cfg.dFF, num_hidden_layers: cfg.nLayers, num_attention_heads: cfg.nHeads,
      num_key_value_heads: cfg.nKvHeads, head_dim: cfg.headDim, max_position_embeddings: cfg.maxPositions,
      rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, hidden_act: 'silu', tie_word_embeddings: cfg.tieEmbeddings,
      attention_bias: cfg.attentionBias, mlp_bias: cfg.mlpBias, torch_dtype: 'float32', ...ids, ...labelsJson,
    };
  }
  return {
    architectures, model_type: 'bert', vocab_size: cfg.vocabSize, hidden_size: cfg.dModel,
    num_hidden_layers: cfg.nLayers, num_attention_heads: cfg.nHeads, intermediate_size: cfg.dFF,
    max_position_embeddings: cfg.maxPositions, type_vocab_size: cfg.typeVocabSize, layer_norm_eps: cfg.normEps,
    hidden_act: cfg.activation, torch_dtype: 'float32', ...ids, ...labelsJson,
  };
}
