/**
 * Hugging Face config.json <-> ModelConfig. One flat, family-tagged config with units/meaning in the
 * names, so layers never read raw HF keys. Unknown architectures and missing required fields are
 * InputErrors naming config.json and the field.
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

function labels(json: Json): { numLabels: number; id2label: Record<number, string> } {
  const raw = json.id2label as Record<string, string> | undefined;
  const id2label: Record<number, string> = {};
  if (raw && typeof raw === 'object') for (const [k, v] of Object.entries(raw)) id2label[Number(k)] = String(v);
  const numLabels = typeof json.num_labels === 'number' ? json.num_labels : Object.keys(id2label).length || 2;
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
    ...labels(json),
    padTokenId: firstId(json.pad_token_id),
    bosTokenId: firstId(json.bos_token_id),
    eosTokenId: firstId(json.eos_token_id),
  };
  if (family === 'gpt2') {
    const dModel = n('n_embd');
    const nHeads = n('n_head');
    const act = field<string>(json, file, 'activation_function', 'string', 'gelu_new');
    if (act !== 'gelu_new' && act !== 'gelu') throw new InputError(`${file}: activation_function "${act}" is not supported (gelu_new, gelu)`);
    return {
      family, vocabSize: n('vocab_size'), dModel, nLayers: n('n_layer'), nHeads, nKvHeads: nHeads,
      headDim: dModel / nHeads, dFF: typeof json.n_inner === 'number' ? json.n_inner : 4 * dModel,
      maxPositions: n('n_positions', 1024), normEps: n('layer_norm_epsilon', 1e-5), activation: act,
      ropeTheta: 0, tieEmbeddings: json.tie_word_embeddings !== false, attentionBias: true, mlpBias: true,
      typeVocabSize: 0, ...common,
    };
  }
  if (family === 'llama') {
    const dModel = n('hidden_size');
    const nHeads = n('num_attention_heads');
    const act = field<string>(json, file, 'hidden_act', 'string', 'silu');
    if (act !== 'silu') throw new InputError(`${file}: hidden_act "${act}" is not supported for llama (silu)`);
    return {
      family, vocabSize: n('vocab_size'), dModel, nLayers: n('num_hidden_layers'), nHeads,
      nKvHeads: n('num_key_value_heads', nHeads), headDim: n('head_dim', dModel / nHeads),
      dFF: n('intermediate_size'), maxPositions: n('max_position_embeddings', 2048),
      normEps: n('rms_norm_eps', 1e-6), activation: 'silu', ropeTheta: n('rope_theta', 10000),
      tieEmbeddings: field<boolean>(json, file, 'tie_word_embeddings', 'boolean', false),
      // Qwen2 has q/k/v biases but no o_proj bias; it is expressed by the weights present, see hf-keys.
      attentionBias: field<boolean>(json, file, 'attention_bias', 'boolean', json.model_type === 'qwen2'),
      mlpBias: field<boolean>(json, file, 'mlp_bias', 'boolean', false), typeVocabSize: 0, ...common,
    };
  }
  const dModel = n('hidden_size');
  const nHeads = n('num_attention_heads');
  const act = field<string>(json, file, 'hidden_act', 'string', 'gelu');
  if (act !== 'gelu' && act !== 'gelu_new') throw new InputError(`${file}: hidden_act "${act}" is not supported for bert (gelu, gelu_new)`);
  return {
    family, vocabSize: n('vocab_size'), dModel, nLayers: n('num_hidden_layers'), nHeads, nKvHeads: nHeads,
    headDim: dModel / nHeads, dFF: n('intermediate_size'), maxPositions: n('max_position_embeddings', 512),
    normEps: n('layer_norm_eps', 1e-12), activation: act, ropeTheta: 0, tieEmbeddings: false,
    attentionBias: true, mlpBias: true, typeVocabSize: n('type_vocab_size', 2), ...common,
  };
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
