/** Each schedule against its closed form at hand-picked steps. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clipGlobalNorm } from '../../src/optim/clip.ts';
import { learningRate, type ScheduleConfig } from '../../src/optim/lr-schedule.ts';

const base: ScheduleConfig = { name: 'constant', peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLrRatio: 0 };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-15, `${a} != ${b}`);

test('warmup is linear from lr/W to lr for every schedule', () => {
  for (const name of ['constant', 'linear', 'cosine'] as const) {
    close(learningRate({ ...base, name }, 0), 1e-4); // 1e-3 * 1/10
    close(learningRate({ ...base, name }, 4), 5e-4);
    close(learningRate({ ...base, name }, 9), 1e-3);
  }
});

test('constant stays at the peak', () => {
  close(learningRate(base, 10), 1e-3);
  close(learningRate(base, 1000), 1e-3);
});

test('linear decays to the floor: p = (s - 10) / 100', () => {
  const c = { ...base, name: 'linear' as const };
  close(learningRate(c, 10), 1e-3);
  close(learningRate(c, 35), 1e-3 * 0.75); // p = 0.25
  close(learningRate(c, 110), 0);
  close(learningRate(c, 500), 0); // clamped
  close(learningRate({ ...c, minLrRatio: 0.1 }, 60), 1e-3 * (1 - 0.9 * 0.5)); // 5.5e-4
});

test('cosine: half-way is (1 + cos(pi/2)) / 2 = 0.5 of the peak, the end is the floor', () => {
  const c = { ...base, name: 'cosine' as const };
  close(learningRate(c, 10), 1e-3);
  close(learningRate(c, 60), 0.5e-3);
  close(learningRate(c, 35), 1e-3 * (1 + Math.SQRT1_2) / 2); // p = 1/4, cos(pi/4) = sqrt(2)/2
  close(learningRate(c, 110), 0);
  close(learningRate({ ...c, minLrRatio: 0.2 }, 110), 2e-4);
});

test('clipGlobalNorm: norm of (3, 4) is 5; clipped to 1 becomes (0.6, 0.8); below the limit unchanged', () => {
  const g = Float32Array.from([3, 4]);
  assert.equal(clipGlobalNorm(g, 1), 5);
  assert.ok(Math.abs(g[0] - 0.6) < 1e-6 && Math.abs(g[1] - 0.8) < 1e-6);
  const h = Float32Array.from([0.3, 0.4]);
  assert.ok(Math.abs(clipGlobalNorm(h, 1) - 0.5) < 1e-7);
  assert.deepEqual([...h], [Math.fround(0.3), Math.fround(0.4)]);
});
