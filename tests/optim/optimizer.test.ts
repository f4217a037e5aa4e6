/**
 * What every optimizer promises the trainer (optimizer.ts): createOptimizer builds what
 * training.optimizer names with the job's settings, the buffers it keeps are the ones memory.ts counts
 * (stateBufferNames), and state saved after k steps and restored into a fresh optimizer continues
 * bit-identically to the one that never stopped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOptimizer } from '../../src/optim/create-optimizer.ts';
import { stateBufferNames, type OptimizerSettings } from '../../src/optim/optimizer.ts';
import { Rng } from '../../src/util/rng.ts';

const base: OptimizerSettings = { optimizer: 'adamw', beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, momentum: 0, nesterov: false, dampening: 0 };
const settings: OptimizerSettings[] = [
  { ...base, optimizer: 'sgd' },
  { ...base, optimizer: 'sgd', momentum: 0.9, dampening: 0.2 },
  { ...base, optimizer: 'sgd', momentum: 0.9, nesterov: true },
  { ...base, optimizer: 'adam' },
  { ...base, optimizer: 'adamw' },
  { ...base, optimizer: 'lion' },
];
const label = (s: OptimizerSettings) => `${s.optimizer}${s.momentum ? ` momentum ${s.momentum}` : ''}${s.dampening ? ` dampening ${s.dampening}` : ''}${s.nesterov ? ' nesterov' : ''}`;

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

for (const s of settings) {
  test(`${label(s)}: kind, state buffers as stateBufferNames says, save after 3 steps + restore continues bit-identically`, () => {
    const n = 1001;
    const rng = new Rng(11);
    const decay = Uint8Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 0 : 1));
    const theta0 = Float32Array.from({ length: n }, () => rng.normal());
    const grads = [...Array(7)].map(() => Float32Array.from({ length: n }, () => rng.normal() * 0.1));
    const lr = (k: number) => 1e-2 / (k + 1);

    const straight = createOptimizer(s, n, decay);
    assert.equal(straight.kind, s.optimizer);
    assert.deepEqual(Object.keys(straight.buffers).sort(), stateBufferNames(s).sort());
    const p = Float32Array.from(theta0);
    for (let k = 0; k < 3; k++) straight.update(p, grads[k], lr(k));

    // What a checkpoint holds: copies of the state and the parameters after step 3.
    const saved = { step: straight.step, buffers: Object.fromEntries(Object.entries(straight.buffers).map(([k, b]) => [k, Float32Array.from(b)])) };
    const q = Float32Array.from(p);
    const pAfter3 = Float32Array.from(p);
    const resumed = createOptimizer(s, n, decay);
    resumed.restore(saved);
    assert.equal(resumed.step, 3);
    for (let k = 3; k < 7; k++) {
      straight.update(p, grads[k], lr(k));
      resumed.update(q, grads[k], lr(k));
    }
    assert.ok(bits(p).equals(bits(q)), 'parameters bit-identical after resuming');
    for (const [k, b] of Object.entries(straight.buffers)) assert.ok(bits(b).equals(bits(resumed.buffers[k])), `${k} bit-identical`);
    assert.equal(resumed.step, 7);

    // Without the restore the continuation differs (zero state, step 0), except for plain SGD, whose
    // only state is the step count: so the comparison above really depends on the restored state.
    const afterThree = Float32Array.from(pAfter3);
    const fresh = createOptimizer(s, n, decay);
    for (let k = 3; k < 7; k++) fresh.update(afterThree, grads[k], lr(k));
    assert.equal(bits(afterThree).equals(bits(q)), stateBufferNames(s).length === 0);
  });
}

test('restore refuses state of the wrong shape: other buffers, wrong length', () => {
  const sgd = createOptimizer({ ...base, optimizer: 'sgd', momentum: 0.9 }, 4, new Uint8Array(4));
  assert.throws(() => sgd.restore({ step: 1, buffers: {} }), /sgd keeps state momentum_buffer, the saved state has none/);
  assert.throws(() => sgd.restore({ step: 1, buffers: { momentum_buffer: new Float32Array(3) } }), /"momentum_buffer" has 3 entries for 4 parameters/);
  const adam = createOptimizer({ ...base, optimizer: 'adam' }, 4, new Uint8Array(4));
  assert.throws(() => adam.restore({ step: 1, buffers: { m: new Float32Array(4) } }), /adam keeps state m, v, the saved state has m/);
  assert.equal(adam.step, 0);
});
