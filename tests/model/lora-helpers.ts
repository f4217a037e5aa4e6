/** Tiny base models with LoRA adapters for the LoRA tests (random base weights from helpers.ts). */
import * as tf from '@tensorflow/tfjs-core';
import type { Family, Task } from '../../src/model/config.ts';
import { resolveLora, type LoraOptions, type ResolvedLora } from '../../src/model/lora-config.ts';
import { LoraAdapter, loraPlan, type LoraTarget } from '../../src/model/lora.ts';
import type { Model } from '../../src/model/model.ts';
import { attachNewAdapter } from '../../src/model/peft.ts';
import type { HostTensor } from '../../src/model/safetensors.ts';
import { Rng } from '../../src/util/rng.ts';
import { makeModel, randomHost, tinyConfig } from './helpers.ts';

export interface LoraCase {
  family: Family;
  task: Task;
  lora?: Partial<LoraOptions>;
  /** Random non-zero A and B (std 0.3) instead of PEFT's init (B = 0). */
  random?: boolean;
  seed?: number;
}

export function loraOptions(family: Family, task: Task, o: Partial<LoraOptions> = {}): ResolvedLora {
  return resolveLora(family, task, { r: 4, alpha: 8, dropout: 0, useRslora: false, ...o }, 'test');
}

/** The base's host tensors and a model with an adapter attached. */
export function loraModel(c: LoraCase): { model: Model; host: Map<string, HostTensor>; lora: ResolvedLora } {
  const cfg = tinyConfig(c.family);
  const host = randomHost(cfg, c.task, c.seed ?? 1);
  const model = makeModel(cfg, c.task, host);
  const lora = loraOptions(c.family, c.task, c.lora);
  if (!c.random) {
    attachNewAdapter(model, lora, 7, 'test');
    return { model, host, lora };
  }
  const plan = loraPlan(cfg, c.task, model.specs, lora, 'test');
  const rng = new Rng(c.seed ?? 11);
  const values = new Map<string, HostTensor>();
  const fill = (shape: number[]): HostTensor => ({ shape, data: Float32Array.from({ length: shape[0] * shape[1] }, () => 0.3 * rng.normal()) });
  for (const t of plan.targets) {
    values.set(t.a, fill([t.inFeatures, lora.r]));
    values.set(t.b, fill([lora.r, t.outFeatures]));
  }
  model.attachAdapter(new LoraAdapter(lora, plan.targets, plan.saved, values, model));
  return { model, host, lora };
}

/**
 * One LoRA linear for the closed-form tests: x (N, in), W (in, out) split into `parts` column blocks
 * (weights w0.. as GPT-2's fused c_attn is), A (in, r), B (r, out), an upstream gradient G (N, out),
 * all standard normal drawn from `rng` in that order, and the adapter over them. The caller disposes
 * the tf tensors in `base`.
 */
export function oneLinearLora(rng: Rng, d: { N: number; inF: number; outF: number; r: number; s: number; parts: number; family: Family; dropout: number }) {
  const { N, inF, outF, r, s, parts } = d;
  const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const [x, W, A, B, G] = [normal(N * inF), normal(inF * outF), normal(inF * r), normal(r * outF), normal(N * outF)];
  const cols = outF / parts;
  const names = [...Array(parts).keys()].map((k) => `w${k}`);
  const target: LoraTarget = { module: 'm', bodyModule: 'm', weights: names, inFeatures: inF, outFeatures: outF, a: 'm.lora_A', b: 'm.lora_B' };
  const lora = resolveLora(d.family, 'causal-lm', { r, alpha: s * r, dropout: d.dropout, useRslora: false }, 'test');
  const adapter = new LoraAdapter(lora, [target], [], new Map<string, HostTensor>([[target.a, { shape: [inF, r], data: A }], [target.b, { shape: [r, outF], data: B }]]), { specs: [], params: new Map() });
  // W's column block k is weight w_k (in, cols).
  const block = (k: number) => tf.tensor2d(Float32Array.from({ length: inF * cols }, (_, i) => W[Math.floor(i / cols) * outF + k * cols + (i % cols)]), [inF, cols]);
  const base = new Map(names.map((n, k) => [n, block(k)]));
  return { x, W, A, B, G, cols, names, target, lora, adapter, base };
}
