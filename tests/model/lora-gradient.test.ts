/**
 * LoRA gradients, checked two independent ways:
 * 1. one LoRA linear y = x (W + s A B) against the closed form in float64:
 *      dA = s x^T G B^T,  dB = s A^T x^T G    (G = dL/dy; L = sum(y * G))
 *    for a plain weight and for GPT-2's fused c_attn (B's columns split over wq | wk | wv);
 * 2. every adapter tensor (and modules_to_save) of a tiny model of each family against central finite
 *    differences of the float64 reference forward (tests/model/reference/forward64.ts) on float64
 *    merged weights W + s A B in the HF layout, along a random direction per tensor:
 *      <dL/dA, U>  ~=  (L64(A + eps U) - L64(A - eps U)) / (2 eps)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { configToHF, type Family, type Task } from '../../src/model/config.ts';
import { linear } from '../../src/model/layers/linear.ts';
import { paramSpecs } from '../../src/model/model.ts';
import { internalToHF } from '../../src/model/weights.ts';
import { crossEntropySum } from '../../src/train/loss.ts';
import { Rng } from '../../src/util/rng.ts';
import { idsTensor, randomIds, ready, relErr } from './helpers.ts';
import { loraModel, oneLinearLora } from './lora-helpers.ts';
import { bertSeqCls64, gpt2CausalLM64, llamaCausalLM64, llamaSeqCls64 } from './reference/forward64.ts';

for (const parts of [1, 3]) {
  test(`one LoRA linear (${parts === 1 ? 'plain weight' : 'fused c_attn split in 3'}): dA, dB equal the float64 closed form`, async () => {
    await ready;
    const rng = new Rng(parts);
    const [N, inF, outF, r, s] = [5, 6, 9, 3, 1.75];
    const { x, A, B, G, names, target, adapter, base } = oneLinearLora(rng, { N, inF, outF, r, s, parts, family: 'llama', dropout: 0 });
    const { grads } = tf.variableGrads(() => tf.tidy(() => {
      const eff = adapter.effective(base);
      const y = tf.concat(names.map((n) => linear(tf.tensor2d(x, [N, inF]), eff.get(n) as tf.Tensor2D)), 1); // (N, out)
      return tf.sum(tf.mul(y, tf.tensor2d(G, [N, outF]))) as tf.Scalar;
    }), [...adapter.params.values()]);
    const dA = (await grads[adapter.params.get(target.a)!.name].data()) as Float32Array;
    const dB = (await grads[adapter.params.get(target.b)!.name].data()) as Float32Array;

    const xtG = new Float64Array(inF * outF); // x^T G (in, out)
    for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) for (let n = 0; n < N; n++) xtG[i * outF + o] += x[n * inF + i] * G[n * outF + o];
    const wantA = new Float64Array(inF * r);
    for (let i = 0; i < inF; i++) for (let k = 0; k < r; k++) for (let o = 0; o < outF; o++) wantA[i * r + k] += s * xtG[i * outF + o] * B[k * outF + o];
    const wantB = new Float64Array(r * outF);
    for (let k = 0; k < r; k++) for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) wantB[k * outF + o] += s * A[i * r + k] * xtG[i * outF + o];
    assert.ok(relErr(dA, wantA) < 1e-5, `dA ${relErr(dA, wantA)}`);
    assert.ok(relErr(dB, wantB) < 1e-5, `dB ${relErr(dB, wantB)}`);
    tf.dispose([...Object.values(grads), ...base.values()]);
    adapter.dispose();
  });
}

const EPS = 1e-4;
const B = 2;
const T = 6;

function ce64(logits: Float64Array, targets: number[], V: number): number {
  let total = 0;
  targets.forEach((y, n) => {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[n * V + v] - max);
    total += Math.log(s) + max - logits[n * V + y];
  });
  return total / targets.length;
}

type T64 = { shape: number[]; data: Float32Array | Float64Array };

const CASES: Array<{ family: Family; task: Task; targets?: string[] }> = [
  { family: 'llama', task: 'causal-lm', targets: ['q_proj', 'v_proj', 'down_proj'] },
  { family: 'llama', task: 'classification' },
  { family: 'gpt2', task: 'causal-lm', targets: ['c_attn', 'c_fc'] },
  { family: 'bert', task: 'classification', targets: ['query', 'dense'] },
];

for (const c of CASES) {
  test(`${c.family} ${c.task}: adapter gradients match float64 finite differences of the merged reference forward`, async () => {
    await ready;
    const { model, host, lora } = loraModel({ family: c.family, task: c.task, random: true, lora: { targetModules: c.targets, alpha: 6 } });
    const cfg = model.config;
    const adapter = model.adapter!;
    const ids = randomIds(B, T, cfg.vocabSize, 9);
    const mask = ids.map((row) => row.map(() => 1));
    const lm = c.task === 'causal-lm';
    const targets = lm ? randomIds(1, B * T, cfg.vocabSize, 4)[0] : [0, 2];
    const width = lm ? cfg.vocabSize : cfg.numLabels;
    const config = configToHF(cfg, c.task);
    const specs = paramSpecs(cfg, c.task);
    const hfBase = internalToHF(cfg, specs, host);
    const trainable = new Map<string, Float32Array>();
    for (const [name, v] of adapter.trainable.params) trainable.set(name, (await v.data()) as Float32Array);

    /** Float64 loss with the trainable tensors `values` (internal layout): merged HF weights, reference forward. */
    const loss64 = (values: ReadonlyMap<string, Float32Array | Float64Array>): number => {
      const w = new Map<string, T64>(hfBase);
      for (const t of adapter.targets) {
        const a = values.get(t.a)!;
        const b = values.get(t.b)!;
        const key = `${t.module}.weight`;
        const W = hfBase.get(key)!;
        const merged = Float64Array.from(W.data);
        const conv1d = cfg.family === 'gpt2'; // HF Conv1D is (in, out); nn.Linear (out, in)
        for (let i = 0; i < t.inFeatures; i++) {
          for (let o = 0; o < t.outFeatures; o++) {
            let d = 0;
            for (let k = 0; k < lora.r; k++) d += a[i * lora.r + k] * b[k * t.outFeatures + o];
            merged[conv1d ? i * t.outFeatures + o : o * t.inFeatures + i] += lora.scale * d;
          }
        }
        w.set(key, { shape: W.shape, data: merged });
      }
      for (const rule of adapter.saved) {
        // modules_to_save in HF layout; a float64 transpose keeps the perturbation exact.
        const v = values.get(rule.internal[0])!;
        const shape = host.get(rule.internal[0])!.shape;
        const data = shape.length === 2 ? Float64Array.from({ length: v.length }, (_, j) => v[(j % shape[0]) * shape[1] + Math.floor(j / shape[0])]) : Float64Array.from(v);
        w.set(rule.hf, { shape: shape.length === 2 ? [shape[1], shape[0]] : shape, data });
      }
      const logits = cfg.family === 'gpt2' ? gpt2CausalLM64(config, w, ids)
        : cfg.family === 'llama' ? (lm ? llamaCausalLM64(config, w, ids) : llamaSeqCls64(config, w, ids, [T, T]))
        : bertSeqCls64(config, w, ids, mask);
      return ce64(logits, targets, width);
    };

    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward({ ids: idsTensor(ids), lengths: [T, T], attentionMask: cfg.family === 'bert' ? idsTensor(mask) : undefined });
      return tf.div(crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.ones([targets.length])), targets.length) as tf.Scalar;
    }, model.variables());
    const loss32 = (await value.data())[0];
    assert.ok(Math.abs(loss32 - loss64(trainable)) < 1e-4 * Math.max(1, loss32), `loss ${loss32} vs ${loss64(trainable)}`);
    assert.equal(Object.keys(grads).length, adapter.trainable.params.size, 'gradients for the trainable tensors only');

    const rng = new Rng(17);
    const failures: string[] = [];
    for (const [name, v] of adapter.trainable.params) {
      const g = (await grads[v.name].data()) as Float32Array;
      const base = trainable.get(name)!;
      const u = base.map(() => rng.normal());
      let analytic = 0;
      for (let i = 0; i < u.length; i++) analytic += g[i] * u[i];
      const shifted = (sign: number) => loss64(new Map<string, Float32Array | Float64Array>(trainable).set(name, Float64Array.from(base, (x, i) => x + sign * EPS * u[i])));
      const numeric = (shifted(1) - shifted(-1)) / (2 * EPS);
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-2);
      if (err > 2e-4) failures.push(`${name}: analytic ${analytic.toExponential(4)} vs numeric ${numeric.toExponential(4)}`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.ok(adapter.targets.length >= 4);
  });
}
