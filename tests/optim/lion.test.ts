/**
 * Lion against a float64 loop written from Chen et al. 2023, Algorithm 2 (as lucidrains' lion-pytorch:
 * decoupled weight decay, the sign of the interpolation b1 m + (1 - b1) g, then m's update with b2).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lion, type LionConfig } from '../../src/optim/lion.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, trajectory } from './helpers.ts';

function reference64(theta0: number[], grads: number[][], lrs: number[], decay: number[], c: LionConfig): number[] {
  const theta = [...theta0];
  const m = theta.map(() => 0);
  grads.forEach((g, s) => {
    for (let i = 0; i < theta.length; i++) {
      const update = Math.sign(c.beta1 * m[i] + (1 - c.beta1) * g[i]) + (decay[i] ? c.weightDecay * theta[i] : 0);
      theta[i] = theta[i] - lrs[s] * update;
      m[i] = c.beta2 * m[i] + (1 - c.beta2) * g[i];
    }
  });
  return theta;
}

test('Lion over 25 steps matches a float64 loop of the paper\'s Algorithm 2 (decoupled decay on masked entries only)', () => {
  const rng = new Rng(8);
  const n = 257;
  const cfg = { beta1: 0.9, beta2: 0.99, weightDecay: 0.5 };
  const theta0 = [...Array(n)].map(() => Math.fround(rng.normal()));
  const decay = [...Array(n)].map((_, i) => (i % 3 === 0 ? 0 : 1));
  // Gradients whose sign flips between steps, so the b1 / b2 interpolations decide the sign.
  const grads = [...Array(25)].map(() => [...Array(n)].map(() => Math.fround(rng.normal() * 0.1)));
  const lrs = grads.map((_, s) => 1e-3 * (1 - s / 50));
  const opt = new Lion(n, cfg, Uint8Array.from(decay));
  const params = trajectory(opt, theta0, grads, lrs);
  const want = reference64(theta0, grads, lrs, decay, cfg);
  const maxErr = maxAbsDiff(params, want);
  assert.ok(maxErr < 1e-6, `max abs error ${maxErr}`);
  assert.equal(opt.step, 25);
  // Changing either beta or the decay changes the result.
  for (const other of [{ ...cfg, beta1: 0.5 }, { ...cfg, beta2: 0.5 }, { ...cfg, weightDecay: 0 }]) {
    const alt = reference64(theta0, grads, lrs, decay, other);
    assert.ok(alt.some((x, i) => Math.abs(x - want[i]) > 1e-4), JSON.stringify(other));
  }
});

test('every Lion step moves each parameter by exactly lr (closed form: |sign(c)| = 1), 0 where the gradient and m are 0', () => {
  const params = Float32Array.from([1, -2, 0.5, 3]);
  const opt = new Lion(4, { beta1: 0.9, beta2: 0.99, weightDecay: 0 }, new Uint8Array(4));
  opt.update(params, Float32Array.from([0.5, -4, 1e-9, 0]), 0.25);
  assert.deepEqual([...params], [0.75, -1.75, 0.25, 3]);
  assert.deepEqual([...opt.m].map((x) => +x.toPrecision(6)), [0.005, -0.04, 1e-11, 0]);
});
