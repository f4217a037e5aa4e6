/** Tiny models with large random weights for numerical tests (std 0.02 would make every check trivial). */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/model/backend.ts';
import { configFromHF, configToHF, type Family, type ModelConfig, type Task } from '../../src/model/config.ts';
import { Model, paramSpecs } from '../../src/model/model.ts';
import type { HostTensor } from '../../src/model/safetensors.ts';
import { internalToHF } from '../../src/model/weights.ts';
import { Rng } from '../../src/util/rng.ts';

export const ready = initBackend(undefined, () => {});

export interface TinyOptions {
  tie?: boolean;
  nKvHeads?: number;
  bias?: boolean;
  numLabels?: number;
}

export function tinyConfig(family: Family, o: TinyOptions = {}): ModelConfig {
  const labels = Object.fromEntries([...Array(o.numLabels ?? 3).keys()].map((i) => [i, `L${i}`]));
  const hf: Record<string, unknown> =
    family === 'gpt2'
      ? { model_type: 'gpt2', vocab_size: 37, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 16, layer_norm_epsilon: 1e-5, tie_word_embeddings: o.tie ?? true }
      : family === 'llama'
        ? {
            model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
            num_attention_heads: 4, num_key_value_heads: o.nKvHeads ?? 2, max_position_embeddings: 16, rms_norm_eps: 1e-6,
            rope_theta: 10000, tie_word_embeddings: o.tie ?? false, attention_bias: o.bias ?? false, mlp_bias: o.bias ?? false,
          }
        : { model_type: 'bert', vocab_size: 37, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 24, max_position_embeddings: 16, type_vocab_size: 2, layer_norm_eps: 1e-12 };
  return configFromHF({ ...hf, id2label: labels });
}

/** Internal-layout host tensors: weights ~ N(0, 0.35^2), norm gains ~ 1 + N(0, 0.1^2). */
export function randomHost(cfg: ModelConfig, task: Task, seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const spec of paramSpecs(cfg, task)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = spec.init === 'ones' ? 1 + 0.1 * rng.normal() : 0.35 * rng.normal();
    out.set(spec.name, { shape: spec.shape, data });
  }
  return out;
}

export function hfView(cfg: ModelConfig, task: Task, host: ReadonlyMap<string, HostTensor>) {
  return { config: configToHF(cfg, task), weights: internalToHF(cfg, paramSpecs(cfg, task), host) };
}

export function makeModel(cfg: ModelConfig, task: Task, host: ReadonlyMap<string, HostTensor>): Model {
  return Model.fromHost(cfg, task, host);
}

export function idsTensor(ids: number[][]): tf.Tensor2D {
  return tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
}

export function randomIds(B: number, T: number, V: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return [...Array(B)].map(() => [...Array(T)].map(() => rng.int(V)));
}

/** max |a - b| / max(1, max |b|) */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
