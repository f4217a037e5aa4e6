/**
 * Model sizes `ringtune model create` can build without a download. `small` is bench config A and
 * `base` is bench config B (see bench/step.ts); `tiny` is for tests.
 */
import { InputError } from '../errors.ts';
import { configFromHF, type Family, type ModelConfig } from './config.ts';

export const PRESETS = {
  tiny: { vocab: 512, d: 64, layers: 2, heads: 4, kvHeads: 2, positions: 128 },
  small: { vocab: 4096, d: 128, layers: 4, heads: 4, kvHeads: 2, positions: 256 },
  base: { vocab: 8192, d: 256, layers: 6, heads: 4, kvHeads: 2, positions: 512 },
} as const;
export type PresetName = keyof typeof PRESETS;

export interface PresetOverrides {
  vocabSize?: number;
  maxPositions?: number;
  numLabels?: number;
  labels?: string[];
}

/** HF-style config.json object for a family and preset (what `model create` writes). */
export function presetHFConfig(family: Family, preset: string, o: PresetOverrides = {}): Record<string, unknown> {
  if (!(preset in PRESETS)) throw new InputError(`unknown preset "${preset}": use one of ${Object.keys(PRESETS).join(', ')}`);
  const p = PRESETS[preset as PresetName];
  const vocab = o.vocabSize ?? p.vocab;
  const positions = o.maxPositions ?? p.positions;
  const labels = o.labels ?? [...Array(o.numLabels ?? 2).keys()].map((i) => `LABEL_${i}`);
  const id2label = Object.fromEntries(labels.map((l, i) => [i, l]));
  if (family === 'gpt2') {
    return { model_type: 'gpt2', vocab_size: vocab, n_embd: p.d, n_layer: p.layers, n_head: p.heads, n_positions: positions, id2label };
  }
  if (family === 'llama') {
    // SwiGLU width 8/3 d rounded up to a multiple of 8, as Llama does with multiple_of.
    const dFF = Math.ceil((8 * p.d) / 3 / 8) * 8;
    return {
      model_type: 'llama', vocab_size: vocab, hidden_size: p.d, intermediate_size: dFF, num_hidden_layers: p.layers,
      num_attention_heads: p.heads, num_key_value_heads: p.kvHeads, max_position_embeddings: positions,
      rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, id2label,
    };
  }
  return {
    model_type: 'bert', vocab_size: vocab, hidden_size: p.d, num_hidden_layers: p.layers, num_attention_heads: p.heads,
    intermediate_size: 4 * p.d, max_position_embeddings: positions, type_vocab_size: 2, id2label,
  };
}

export function presetConfig(family: Family, preset: string, o: PresetOverrides = {}): ModelConfig {
  return configFromHF(presetHFConfig(family, preset, o), `preset ${family}/${preset}`);
}
