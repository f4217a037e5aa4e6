/**
 * Model sizes `ringtune model create` can build without a download. `small` is bench config A and
 * `base` is bench config B (see bench/step.ts); `tiny` is for tests. `gpt2-124m` and `llama-135m` are
 * real published shapes (the fine-tuning scale) and belong to one family each:
 *   gpt2-124m:  GPT-2 small (Radford et al. 2019; HF `gpt2`): vocab 50257, d 768, 12 layers, 12 heads,
 *               1024 learned positions, tanh GELU, 4d MLP, biases, LM head tied to wte: 124,439,808 params.
 *               Bench config S is this shape.
 *   llama-135m: SmolLM-135M (HF `HuggingFaceTB/SmolLM-135M`, a Llama architecture): vocab 49152, d 576,
 *               30 layers, 9 query heads sharing 3 kv heads (GQA), SwiGLU 1536, RoPE theta 10000,
 *               RMSNorm, no biases, tied embeddings: 134,515,008 params. The project's llama tokenizer
 *               already follows SmolLM's special tokens and ChatML.
 * The shipped corpus (~100 KB) cannot supply 50k BPE merges: the tokenizer builder fills the rest of
 * the vocabulary with <|reserved_special_token_N|> entries, so the model's vocab size stays exact.
 */
import { InputError } from '../errors.ts';
import { configFromHF, type Family, type ModelConfig } from './config.ts';

/** A model shape independent of family; `dFF` and `ropeTheta` default per family when absent. */
export interface Shape {
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  kvHeads: number;
  positions: number;
  dFF?: number;
  ropeTheta?: number;
  /** Families `model create` accepts this preset for (all when absent). */
  families?: readonly Family[];
}

export const PRESETS = {
  tiny: { vocab: 512, d: 64, layers: 2, heads: 4, kvHeads: 2, positions: 128 },
  small: { vocab: 4096, d: 128, layers: 4, heads: 4, kvHeads: 2, positions: 256 },
  base: { vocab: 8192, d: 256, layers: 6, heads: 4, kvHeads: 2, positions: 512 },
  'gpt2-124m': { vocab: 50257, d: 768, layers: 12, heads: 12, kvHeads: 12, positions: 1024, families: ['gpt2'] },
  'llama-135m': { vocab: 49152, d: 576, layers: 30, heads: 9, kvHeads: 3, positions: 2048, dFF: 1536, ropeTheta: 10000, families: ['llama'] },
} as const satisfies Record<string, Shape>;
export type PresetName = keyof typeof PRESETS;

export interface PresetOverrides {
  vocabSize?: number;
  maxPositions?: number;
  numLabels?: number;
  labels?: string[];
}

/** "tiny | small | ... | llama-135m (llama only)", for CLI help and error messages. */
export function presetChoices(): string {
  return Object.entries(PRESETS as Record<string, Shape>)
    .map(([name, s]) => (s.families ? `${name} (${s.families.join('/')} only)` : name))
    .join(' | ');
}

/** HF-style config.json object for a family and preset (what `model create` writes). */
export function presetHFConfig(family: Family, preset: string, o: PresetOverrides = {}): Record<string, unknown> {
  if (!Object.hasOwn(PRESETS, preset)) throw new InputError(`unknown preset "${preset}": use one of ${presetChoices()}`);
  const p: Shape = PRESETS[preset as PresetName];
  if (p.families && !p.families.includes(family)) {
    throw new InputError(`preset "${preset}" is a ${p.families.join('/')} shape; it cannot be used with --family ${family}`);
  }
  return shapeHFConfig(family, p, o);
}

/** HF-style config.json object for any shape in a family's layout (bench/step.ts builds its configs here). */
export function shapeHFConfig(family: Family, p: Shape, o: PresetOverrides = {}): Record<string, unknown> {
  const vocab = o.vocabSize ?? p.vocab;
  const positions = o.maxPositions ?? p.positions;
  const labels = o.labels ?? [...Array(o.numLabels ?? 2).keys()].map((i) => `LABEL_${i}`);
  const id2label = Object.fromEntries(labels.map((l, i) => [i, l]));
  if (family === 'gpt2') {
    return {
      model_type: 'gpt2', vocab_size: vocab, n_embd: p.d, n_layer: p.layers, n_head: p.heads, n_positions: positions,
      ...(p.dFF !== undefined ? { n_inner: p.dFF } : {}), activation_function: 'gelu_new', id2label,
    };
  }
  if (family === 'llama') {
    // SwiGLU width 8/3 d rounded up to a multiple of 8, as Llama does with multiple_of.
    const dFF = p.dFF ?? Math.ceil((8 * p.d) / 3 / 8) * 8;
    return {
      model_type: 'llama', vocab_size: vocab, hidden_size: p.d, intermediate_size: dFF, num_hidden_layers: p.layers,
      num_attention_heads: p.heads, num_key_value_heads: p.kvHeads, max_position_embeddings: positions,
      rms_norm_eps: 1e-5, rope_theta: p.ropeTheta ?? 10000, tie_word_embeddings: true, id2label,
    };
  }
  return {
    model_type: 'bert', vocab_size: vocab, hidden_size: p.d, num_hidden_layers: p.layers, num_attention_heads: p.heads,
    intermediate_size: p.dFF ?? 4 * p.d, max_position_embeddings: positions, type_vocab_size: 2, id2label,
  };
}

export function presetConfig(family: Family, preset: string, o: PresetOverrides = {}): ModelConfig {
  return configFromHF(presetHFConfig(family, preset, o), `preset ${family}/${preset}`);
}

export function shapeConfig(family: Family, shape: Shape, o: PresetOverrides = {}): ModelConfig {
  return configFromHF(shapeHFConfig(family, shape, o), `shape ${family}`);
}
