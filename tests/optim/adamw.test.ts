/** AdamW against a float64 loop written from the formula in Loshchilov & Hutter (Algorithm 2, as torch). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW } from '../../src/optim/adamw.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, trajectory } from './helpers.ts';

function reference64(theta0: number[], grads: number[][], lrs: number[], decay: number[], c: { beta1: number; beta2: number; eps: number; weightDecay: number }): number[] {
  const theta = [...theta0];
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < theta.length; i++) {
      if (decay[i]) theta[i] -= lrs[s] * c.weightDecay * theta[i];
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] ** 2;
      const mHat = m[i] / (1 - c.beta1 ** t);
      const vHat = v[i] / (1 - c.beta2 ** t);
      theta[i] -= (lrs[s] * mHat) / (Math.sqrt(vHat) + c.eps);
    }
  });
  return theta;
}

test('AdamW over 25 steps matches a float64 reference (decoupled decay on masked entries only)', () => {
  const rng = new Rng(1);
  const n = 257;
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const theta0 = [...Array(n)].map(() => rng.normal());
  const decay = [...Array(n)].map((_, i) => (i % 3 === 0 ? 0 : 1));
  const grads = [...Array(25)].map(() => [...Array(n)].map(() => rng.normal() * 0.1));
  const lrs = grads.map((_, s) => 1e-2 * (1 - s / 50));
  const opt = new AdamW(n, cfg, Uint8Array.from(decay));
  const params = trajectory(opt, theta0, grads, lrs);
  const want = reference64(theta0, grads.map((g) => g.map(Math.fround)), lrs, decay, cfg);
  const maxErr = maxAbsDiff(params, want);
  assert.ok(maxErr < 1e-6, `max abs error ${maxErr}`);
  // The update really moved the parameters (by ~ lr per step) and decay made a difference.
  assert.ok(Math.abs(params[1] - theta0[1]) > 1e-3);
  const noDecay = reference64(theta0, grads, lrs, decay.map(() => 0), cfg);
  assert.ok(Math.abs(noDecay[1] - want[1]) > 1e-4);
  assert.equal(opt.step, 25);
});

test('the first AdamW step moves each parameter by lr * sign(g) (closed form: m_hat / sqrt(v_hat) = g / |g|)', () => {
  const params = Float32Array.from([1, -2, 3]);
  const opt = new AdamW(3, { beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0 }, new Uint8Array(3));
  opt.update(params, Float32Array.from([0.5, -4, 1e-3]), 0.1);
  assert.deepEqual([...params].map((x) => +x.toFixed(6)), [0.9, -1.9, 2.9]);
});
