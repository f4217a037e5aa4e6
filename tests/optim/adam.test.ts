/**
 * Adam against a float64 loop written from torch.optim.Adam's documented algorithm: L2 weight decay
 * added to the gradient (coupled, unlike AdamW), bias-corrected moments, eps added after dividing
 * sqrt(v) by sqrt(1 - b2^t).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Adam, type AdamConfig } from '../../src/optim/adam.ts';
import { AdamW } from '../../src/optim/adamw.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, trajectory } from './helpers.ts';

function reference64(theta0: number[], grads: number[][], lrs: number[], decay: number[], c: AdamConfig): number[] {
  const theta = [...theta0];
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  grads.forEach((grad, s) => {
    const t = s + 1;
    for (let i = 0; i < theta.length; i++) {
      const g = decay[i] ? grad[i] + c.weightDecay * theta[i] : grad[i];
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g;
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g * g;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - c.beta2 ** t) + c.eps;
      theta[i] = theta[i] - (lrs[s] / (1 - c.beta1 ** t)) * (m[i] / denom);
    }
  });
  return theta;
}

test('Adam over 25 steps matches a float64 torch.optim.Adam loop (L2 decay on masked entries only)', () => {
  const rng = new Rng(5);
  const n = 257;
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const theta0 = [...Array(n)].map(() => Math.fround(rng.normal()));
  const decay = [...Array(n)].map((_, i) => (i % 3 === 0 ? 0 : 1));
  const grads = [...Array(25)].map(() => [...Array(n)].map(() => Math.fround(rng.normal() * 0.1)));
  const lrs = grads.map((_, s) => 1e-2 * (1 - s / 50));
  const opt = new Adam(n, cfg, Uint8Array.from(decay));
  const params = trajectory(opt, theta0, grads, lrs);
  const want = reference64(theta0, grads, lrs, decay, cfg);
  const maxErr = maxAbsDiff(params, want);
  assert.ok(maxErr < 1e-6, `max abs error ${maxErr}`);
  assert.equal(opt.step, 25);
  // L2 decay changes the result, and Adam is not AdamW with the same settings.
  const noDecay = reference64(theta0, grads, lrs, decay.map(() => 0), cfg);
  assert.ok(noDecay.some((x, i) => Math.abs(x - want[i]) > 1e-4));
  const adamw = Float32Array.from(theta0);
  const w = new AdamW(n, cfg, Uint8Array.from(decay));
  grads.forEach((g, s) => w.updateJs(adamw, Float32Array.from(g), lrs[s]));
  assert.ok(adamw.some((x, i) => Math.abs(x - params[i]) > 1e-4), 'coupled and decoupled decay differ');
});

test('without weight decay Adam and AdamW take the same steps (to float rounding)', () => {
  const rng = new Rng(6);
  const n = 64;
  const cfg = { beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0 };
  const a = Float32Array.from({ length: n }, () => rng.normal());
  const b = Float32Array.from(a);
  const adam = new Adam(n, cfg, new Uint8Array(n).fill(1));
  const adamw = new AdamW(n, cfg, new Uint8Array(n).fill(1));
  for (let s = 0; s < 5; s++) {
    const g = Float32Array.from({ length: n }, () => rng.normal());
    adam.update(a, g, 1e-2);
    adamw.updateJs(b, g, 1e-2);
  }
  for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-7, `${i}: ${a[i]} vs ${b[i]}`);
});
