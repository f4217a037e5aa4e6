/**
 * SGD against a float64 loop written from torch.optim.SGD's documented algorithm (weight decay added to
 * the gradient, momentum buffer cloned from the gradient on the first step, then dampened, Nesterov
 * look-ahead), over every momentum / dampening / nesterov combination torch accepts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SGD, type SGDConfig } from '../../src/optim/sgd.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, trajectory } from './helpers.ts';

/** torch.optim.SGD, docs pseudo-code, in float64. */
function reference64(theta0: number[], grads: number[][], lrs: number[], decay: number[], c: SGDConfig): number[] {
  const theta = [...theta0];
  const b = theta.map(() => 0);
  grads.forEach((grad, s) => {
    for (let i = 0; i < theta.length; i++) {
      let g = grad[i];
      if (c.weightDecay !== 0 && decay[i]) g = g + c.weightDecay * theta[i];
      if (c.momentum !== 0) {
        if (s > 0) b[i] = c.momentum * b[i] + (1 - c.dampening) * g;
        else b[i] = g;
        if (c.nesterov) g = g + c.momentum * b[i];
        else g = b[i];
      }
      theta[i] = theta[i] - lrs[s] * g;
    }
  });
  return theta;
}

const combos: SGDConfig[] = [
  { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.1 },
  { momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0.1 },
  { momentum: 0.9, dampening: 0.3, nesterov: false, weightDecay: 0.05 },
  { momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0.1 },
  { momentum: 0.5, dampening: 0.5, nesterov: false, weightDecay: 0 },
];

for (const cfg of combos) {
  test(`SGD ${JSON.stringify(cfg)} over 20 steps matches a float64 torch.optim.SGD loop (decay on masked entries only)`, () => {
    const rng = new Rng(3);
    const n = 131;
    const theta0 = [...Array(n)].map(() => Math.fround(rng.normal()));
    const decay = [...Array(n)].map((_, i) => (i % 3 === 0 ? 0 : 1));
    const grads = [...Array(20)].map(() => [...Array(n)].map(() => Math.fround(rng.normal() * 0.1)));
    const lrs = grads.map((_, s) => 0.05 * (1 - s / 40));
    const opt = new SGD(n, cfg, Uint8Array.from(decay));
    const params = trajectory(opt, theta0, grads, lrs);
    const want = reference64(theta0, grads, lrs, decay, cfg);
    const maxErr = maxAbsDiff(params, want);
    // float32 parameters and buffer, ~|theta| 1: rounding of 20 steps stays well under 1e-5.
    assert.ok(maxErr < 2e-6, `max abs error ${maxErr}`);
    assert.equal(opt.step, 20);
    // Each setting changes the result, so the test would catch it being ignored.
    for (const other of [{ ...cfg, momentum: cfg.momentum ? 0 : 0.9, nesterov: false }, { ...cfg, weightDecay: cfg.weightDecay ? 0 : 0.1 },
      ...(cfg.dampening ? [{ ...cfg, dampening: 0 }] : []), ...(cfg.nesterov ? [{ ...cfg, nesterov: false }] : [])]) {
      const alt = reference64(theta0, grads, lrs, decay, other);
      assert.ok(alt.some((x, i) => Math.abs(x - want[i]) > 1e-4), `${JSON.stringify(other)} differs from ${JSON.stringify(cfg)}`);
    }
    assert.equal(Object.keys(opt.buffers).length, cfg.momentum ? 1 : 0);
  });
}

test('the first SGD step with momentum and dampening uses the undamped gradient (torch: buf = g.clone())', () => {
  // theta 1, g 2, lr 0.1, mu 0.9, tau 0.5: step 1 buf = 2 -> theta 0.8; step 2 (g 2) buf = 0.9*2 + 0.5*2 = 2.8 -> theta 0.52.
  const params = Float32Array.from([1]);
  const opt = new SGD(1, { momentum: 0.9, dampening: 0.5, nesterov: false, weightDecay: 0 }, new Uint8Array(1));
  opt.update(params, Float32Array.from([2]), 0.1);
  assert.equal(params[0], Math.fround(0.8));
  opt.update(params, Float32Array.from([2]), 0.1);
  assert.ok(Math.abs(params[0] - 0.52) < 1e-7, `${params[0]}`);
  assert.ok(Math.abs(opt.momentumBuffer![0] - 2.8) < 1e-6);
});

test('SGD refuses Nesterov without momentum or with dampening, as torch does', () => {
  assert.throws(() => new SGD(2, { momentum: 0, dampening: 0, nesterov: true, weightDecay: 0 }, new Uint8Array(2)), /Nesterov momentum requires a momentum > 0 and zero dampening/);
  assert.throws(() => new SGD(2, { momentum: 0.9, dampening: 0.1, nesterov: true, weightDecay: 0 }, new Uint8Array(2)), /Nesterov/);
  assert.throws(() => new SGD(2, { momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0 }, new Uint8Array(3)), /decay mask has 3 entries for 2 parameters/);
  const opt = new SGD(2, { momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0 }, new Uint8Array(2));
  assert.throws(() => opt.update(new Float32Array(2), new Float32Array(1), 0.1), /sgd over 2 parameters got 2 parameters and 1 gradients/);
  assert.equal(opt.step, 0);
});
