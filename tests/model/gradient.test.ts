/**
 * Gradient check for every weight tensor of every family: the tfjs analytic gradient (custom
 * gradients for linear, gather, norms and cross-entropy included) against central finite differences
 * of the float64 reference loss, along a random direction per tensor:
 *   <dL/dW, U>  ~=  (L64(W + eps U) - L64(W - eps U)) / (2 eps)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Family, Task } from '../../src/model/config.ts';
import { crossEntropySum } from '../../src/train/loss.ts';
import { Rng } from '../../src/util/rng.ts';
import { bertSeqCls64, gpt2CausalLM64, gpt2SeqCls64, llamaCausalLM64, llamaSeqCls64 } from './reference/forward64.ts';
import { hfView, idsTensor, makeModel, randomHost, randomIds, ready, tinyConfig, type TinyOptions } from './helpers.ts';

const B = 2;
const T = 6;
const lengths = [6, 4];
const EPS = 1e-4;

function ce64(logits: Float64Array, targets: number[], weights: number[], V: number): number {
  let total = 0;
  let count = 0;
  targets.forEach((y, n) => {
    if (!weights[n]) return;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[n * V + v] - max);
    total += weights[n] * (Math.log(s) + max - logits[n * V + y]);
    count += weights[n];
  });
  return total / count;
}

interface Case { family: Family; task: Task; opts?: TinyOptions }
const cases: Case[] = [
  { family: 'gpt2', task: 'causal-lm' },
  { family: 'gpt2', task: 'classification' },
  { family: 'llama', task: 'causal-lm', opts: { bias: true } },
  { family: 'llama', task: 'classification', opts: { tie: true } },
  { family: 'bert', task: 'classification' },
];

for (const c of cases) {
  test(`${c.family} ${c.task}: analytic gradients match float64 finite differences for every tensor`, async () => {
    await ready;
    const cfg = tinyConfig(c.family, c.opts);
    const host = randomHost(cfg, c.task, 3);
    const ids = randomIds(B, T, cfg.vocabSize, 9);
    const mask = ids.map((row, b) => row.map((_, t) => (t < lengths[b] ? 1 : 0)));
    const lm = c.task === 'causal-lm';
    const targets = lm ? randomIds(1, B * T, cfg.vocabSize, 4)[0] : [0, 2];
    const weights = lm ? mask.flat() : [1, 1];
    const width = lm ? cfg.vocabSize : cfg.numLabels;

    // Perturbations are applied in float64 in the HF layout (rounding W + eps U to float32 would
    // put ~1e-4 noise into the difference quotient); internalToHF is a permutation, so U maps exactly.
    const { config, weights: hfBase } = hfView(cfg, c.task, host);
    const loss64 = (w: ReadonlyMap<string, { shape: number[]; data: Float32Array | Float64Array }>): number => {
      const logits =
        c.family === 'gpt2' ? (lm ? gpt2CausalLM64(config, w, ids) : gpt2SeqCls64(config, w, ids, lengths))
        : c.family === 'llama' ? (lm ? llamaCausalLM64(config, w, ids) : llamaSeqCls64(config, w, ids, lengths))
        : bertSeqCls64(config, w, ids, mask);
      return ce64(logits, targets, weights, width);
    };
    const zeros = new Map([...host].map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(t.data.length) }]));

    const model = makeModel(cfg, c.task, host);
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward({ ids: idsTensor(ids), lengths, attentionMask: c.family === 'bert' ? idsTensor(mask) : undefined });
      const sum = crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.tensor1d(weights));
      return tf.div(sum, weights.reduce((a, b) => a + b)) as tf.Scalar;
    }, model.variables());
    const loss32 = (await value.data())[0];
    assert.ok(Math.abs(loss32 - loss64(hfBase)) < 1e-4 * Math.max(1, loss32), `loss ${loss32} vs ${loss64(hfBase)}`);

    const rng = new Rng(17);
    const failures: string[] = [];
    const names = [...model.params.keys()];
    for (const name of names) {
      const g = (await grads[model.params.get(name)!.name].data()) as Float32Array;
      const base = host.get(name)!;
      const u = base.data.map(() => rng.normal());
      let analytic = 0;
      for (let i = 0; i < u.length; i++) analytic += g[i] * u[i];
      const uHF = hfView(cfg, c.task, new Map(zeros).set(name, { shape: base.shape, data: u })).weights;
      const shifted = (sign: number) => {
        const w = new Map<string, { shape: number[]; data: Float32Array | Float64Array }>(hfBase);
        for (const [key, du] of uHF) {
          if (!du.data.some((x) => x !== 0)) continue;
          const b = hfBase.get(key)!.data;
          w.set(key, { shape: du.shape, data: Float64Array.from(b, (x, i) => x + sign * EPS * du.data[i]) });
        }
        return loss64(w);
      };
      const numeric = (shifted(1) - shifted(-1)) / (2 * EPS);
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-2);
      if (err > 2e-4) failures.push(`${name}: analytic ${analytic.toExponential(4)} vs numeric ${numeric.toExponential(4)}`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.ok(names.length >= 20, `checked ${names.length} tensors`);
  });
}
