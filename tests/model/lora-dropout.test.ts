/**
 * LoRA dropout (PEFT: y = x W + s (drop(x) A) B, inverted dropout, training forwards only), checked:
 * 1. one LoRA linear, plain weight and GPT-2's fused c_attn (three linear calls on one x, B's columns
 *    split over wq | wk | wv): y, dA and dB against the float64 closed form with the SAME mask,
 *    regenerated from the seed the forward uses:
 *      xd = x * M,  y = x W + s xd A B,  dA = s xd^T G B^T,  dB = s A^T xd^T G   (G = dL/dy, L = sum(y G))
 *    For c_attn, ONE mask for all three column blocks (PEFT's single c_attn module); a reference that
 *    draws a fresh mask per block must not match.
 * 2. every adapter tensor of a tiny model of each family against central differences of the loss at
 *    the same masks. The float64 reference forwards (reference/forward64.ts) take merged HF weights and
 *    cannot drop a layer's input, so the differences are of the float32 training forward itself:
 *    Richardson-extrapolated, (4 D(h) - D(2h)) / 3 with h = 2e-3. Over 8 seeds the worst relative error
 *    was 4.5e-3 (p = 0, the merged path float64 checks, errs as much); the tolerance is 1e-2 (2.5e-4 absolute below
 *    0.05), while a mask that differed between forward and backward would be off by about p. 1 checks
 *    the arithmetic exactly.
 * 3. the masks: fraction dropped ~ p, kept values 1 / (1 - p), a different stream per seed field.
 * (That an example's masks do not depend on its micro-batch is checked in tests/train/lora-dropout-run.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Family, Task } from '../../src/model/config.ts';
import { linear } from '../../src/model/layers/linear.ts';
import { dropoutMask, dropoutSeed, type TrainPass } from '../../src/model/lora.ts';
import { crossEntropySum } from '../../src/train/loss.ts';
import { Rng } from '../../src/util/rng.ts';
import { idsTensor, randomIds, ready, relErr } from './helpers.ts';
import { loraModel, oneLinearLora } from './lora-helpers.ts';

const normal = (rng: Rng, n: number, std = 1) => Float32Array.from({ length: n }, () => std * rng.normal());
const PASS: TrainPass = { seed: 5, step: 3, examples: [40, 2] };
/** The forward's mask for x (N, in) of target 0: each example's rows from its own stream, example-major. */
const maskOf = (pass: TrainPass, p: number, N: number, inF: number, streams = pass.examples.map((e) => new Rng(dropoutSeed(pass.seed, pass.step, e, 0)))) => {
  const rows = N / streams.length;
  const out = new Float32Array(N * inF);
  streams.forEach((rng, b) => out.set(dropoutMask(rng, p, rows, inF), b * rows * inF));
  return { mask: out, streams };
};

for (const parts of [1, 3]) {
  test(`one LoRA linear with dropout (${parts === 1 ? 'plain weight' : 'fused c_attn split in 3'}): y, dA, dB equal the float64 closed form with the same mask`, async () => {
    await ready;
    const rng = new Rng(10 + parts);
    const [N, inF, outF, r, s, p] = [8, 6, 9, 3, 1.75, 0.4]; // N = 2 examples x 4 rows
    const { x, W, A, B, G, cols, names, target, adapter, base } = oneLinearLora(rng, { N, inF, outF, r, s, parts, family: 'gpt2', dropout: p });
    const xt = tf.tensor2d(x, [N, inF]);
    const before = tf.memory().numTensors;
    let y!: Float32Array;
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
      // q, k, v: three calls on the same x tensor, as attention.ts makes them
      const out = adapter.withDropout(base, PASS, () => tf.concat(names.map((n) => linear(xt, base.get(n) as tf.Tensor2D)), 1)); // (N, out)
      y = out.dataSync() as Float32Array;
      return tf.sum(tf.mul(out, tf.tensor2d(G, [N, outF]))) as tf.Scalar;
    }), [...adapter.params.values()]);
    const dA = (await grads[adapter.params.get(target.a)!.name].data()) as Float32Array;
    const dB = (await grads[adapter.params.get(target.b)!.name].data()) as Float32Array;
    tf.dispose([value, ...Object.values(grads)]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');

    const { mask: M, streams } = maskOf(PASS, p, N, inF);
    assert.ok(M.some((m) => m === 0) && M.some((m) => m > 1), 'the mask drops some inputs and keeps some');
    const reference = (mask: (k: number) => Float32Array) => {
      const yRef = new Float64Array(N * outF);
      const wantA = new Float64Array(inF * r);
      const wantB = new Float64Array(r * outF);
      for (let k = 0; k < parts; k++) {
        const m = mask(k);
        const xd = Float64Array.from(x, (v, i) => v * m[i]);
        for (let o = k * cols; o < (k + 1) * cols; o++) {
          for (let n = 0; n < N; n++) {
            let base64 = 0;
            let lo = 0;
            for (let i = 0; i < inF; i++) {
              base64 += x[n * inF + i] * W[i * outF + o];
              let xa = 0;
              for (let j = 0; j < r; j++) xa += xd[n * inF + i] * A[i * r + j] * B[j * outF + o];
              lo += xa;
            }
            yRef[n * outF + o] = base64 + s * lo;
          }
          // dA[i, j] += s sum_n xd[n, i] G[n, o] B[j, o];  dB[j, o] = s sum_n,i A[i, j] xd[n, i] G[n, o]
          for (let i = 0; i < inF; i++) {
            let xtg = 0;
            for (let n = 0; n < N; n++) xtg += xd[n * inF + i] * G[n * outF + o];
            for (let j = 0; j < r; j++) {
              wantA[i * r + j] += s * xtg * B[j * outF + o];
              wantB[j * outF + o] += s * A[i * r + j] * xtg;
            }
          }
        }
      }
      return { yRef, wantA, wantB };
    };
    const { yRef, wantA, wantB } = reference(() => M);
    for (let k = 0; k < parts; k++) {
      const pick = (t: ArrayLike<number>) => Array.from({ length: N * cols }, (_, i) => t[Math.floor(i / cols) * outF + k * cols + (i % cols)]);
      assert.ok(relErr(pick(y), pick(yRef)) < 1e-5, `column block ${k} of y: ${relErr(pick(y), pick(yRef))}`);
    }
    assert.ok(relErr(dA, wantA) < 1e-5, `dA ${relErr(dA, wantA)}`);
    assert.ok(relErr(dB, wantB) < 1e-5, `dB ${relErr(dB, wantB)}`);
    // Not the merged (no-dropout) output, and for c_attn not a fresh mask per column block.
    const merged = reference(() => new Float32Array(N * inF).fill(1)).yRef;
    assert.ok(relErr(y, merged) > 1e-2, 'dropout changes the output');
    if (parts === 3) {
      const perBlock = [M, maskOf(PASS, p, N, inF, streams).mask, maskOf(PASS, p, N, inF, streams).mask];
      assert.ok(relErr(y, reference((k) => perBlock[k]).yRef) > 1e-2, 'one mask shared by q, k and v');
    }
    tf.dispose([xt, ...base.values()]);
    adapter.dispose();
  });
}

test('dropout masks: fraction dropped ~ p, kept values 1 / (1 - p), one stream per (seed, step, example, target)', () => {
  const p = 0.25;
  const m = dropoutMask(new Rng(dropoutSeed(5, 3, 40, 0)), p, 400, 250);
  const dropped = m.filter((v) => v === 0).length / m.length;
  assert.ok(Math.abs(dropped - p) < 0.005, `dropped fraction ${dropped}`); // 5 sigma = 5 sqrt(p(1-p)/1e5) = 0.007
  assert.ok(m.every((v) => v === 0 || v === Math.fround(4 / 3)));
  const seeds = [
    dropoutSeed(5, 3, 40, 0), dropoutSeed(5, 3, 40, 1), dropoutSeed(6, 3, 40, 0), dropoutSeed(5, 4, 40, 0), dropoutSeed(5, 3, 41, 0),
    dropoutSeed(0, 0, 0, 0), dropoutSeed(0, 0, 0, 1),
  ];
  assert.equal(new Set(seeds).size, seeds.length, seeds.join());
  assert.equal(dropoutSeed(5, 3, 40, 0), seeds[0], 'a function of its arguments only');
  assert.deepEqual(dropoutMask(new Rng(seeds[0]), 0, 2, 3), new Float32Array(6).fill(1), 'p = 0 keeps everything as is');
});

const CASES: Array<{ family: Family; task: Task; targets?: string[] }> = [
  { family: 'llama', task: 'causal-lm', targets: ['q_proj', 'v_proj', 'down_proj'] },
  { family: 'gpt2', task: 'causal-lm', targets: ['c_attn', 'c_fc'] },
  { family: 'bert', task: 'classification', targets: ['query', 'dense'] },
];

for (const c of CASES) {
  test(`${c.family} ${c.task}: adapter gradients with dropout 0.3 match central differences at the same masks`, async () => {
    await ready;
    const { model } = loraModel({ family: c.family, task: c.task, random: true, lora: { targetModules: c.targets, alpha: 6, dropout: 0.3 } });
    const cfg = model.config;
    const adapter = model.adapter!;
    const [B, T] = [2, 6];
    const ids = randomIds(B, T, cfg.vocabSize, 9);
    const lm = c.task === 'causal-lm';
    const targets = lm ? randomIds(1, B * T, cfg.vocabSize, 4)[0] : [0, 1];
    const lossOf = (train?: TrainPass) => tf.tidy(() => {
      const logits = model.forward({ ids: idsTensor(ids), lengths: [T, T], attentionMask: cfg.family === 'bert' ? idsTensor(ids.map((row) => row.map(() => 1))) : undefined, train });
      return tf.div(crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.ones([targets.length])), targets.length) as tf.Scalar;
    });
    const scalar = (train?: TrainPass) => { const l = lossOf(train); const v = l.dataSync()[0]; l.dispose(); return v; };
    // The training forward drops (a different loss from evaluation's) and draws the same masks again for the same pass.
    const [train1, train2, evalLoss] = [scalar(PASS), scalar(PASS), scalar()];
    assert.equal(train1, train2, 'same pass, same masks');
    assert.ok(Math.abs(train1 - evalLoss) > 1e-4, `training ${train1} vs evaluation ${evalLoss}`);
    assert.notEqual(scalar({ ...PASS, examples: [41, 2] }), train1, 'other examples draw other masks');

    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => lossOf(PASS), model.variables());
    assert.equal((await value.data())[0], train1);
    const rng = new Rng(17);
    const failures: string[] = [];
    const EPS = 2e-3;
    for (const [name, v] of adapter.params) {
      const g = (await grads[v.name].data()) as Float32Array;
      const x0 = (await v.data()) as Float32Array;
      const u = x0.map(() => rng.normal());
      let analytic = 0;
      for (let i = 0; i < u.length; i++) analytic += g[i] * u[i];
      const shifted = (h: number) => {
        tf.tidy(() => v.assign(tf.tensor(Float32Array.from(x0, (x, i) => x + h * u[i]), v.shape)));
        return scalar(PASS);
      };
      // Richardson: (4 D(h) - D(2h)) / 3 cancels the h^2 term, so h can be large against float32 rounding.
      const central = (h: number) => (shifted(h) - shifted(-h)) / (2 * h);
      const numeric = (4 * central(EPS) - central(2 * EPS)) / 3;
      tf.tidy(() => v.assign(tf.tensor(x0, v.shape)));
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 5e-2); // below 5e-2 an absolute 2.5e-4: float32 loss noise
      if (err > 1e-2) failures.push(`${name}: analytic ${analytic.toExponential(4)} vs numeric ${numeric.toExponential(4)} (${err.toExponential(2)})`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    assert.ok(adapter.targets.length >= 4);
    model.dispose();
    assert.deepEqual(failures, [], failures.join('\n'));
  });
}
