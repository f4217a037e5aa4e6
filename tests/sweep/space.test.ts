/**
 * The search space: grid order, seeded draws (same seed -> same trials; the distributions checked by
 * their closed-form quantiles over many draws) and the messages for entries that are not a dimension.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { draw, gridPoints, gridSize, parseDimension, randomPoints, type Dimension, type SpaceField } from '../../src/sweep/space.ts';
import { Rng } from '../../src/util/rng.ts';

const dim = (v: unknown): Dimension => {
  const d = parseDimension(v);
  assert.equal(typeof d, 'object', String(d));
  return d as Dimension;
};

test('grid: the product in the order the fields are written, the last varying fastest; int_uniform counts as a..b', () => {
  const space: SpaceField[] = [{ key: 'training.optimizer', dim: dim(['adamw', 'sgd']) }, { key: 'lora.r', dim: dim({ int_uniform: [3, 5] }) }];
  assert.equal(gridSize(space), 6);
  assert.deepEqual(gridPoints(space), [
    { 'training.optimizer': 'adamw', 'lora.r': 3 }, { 'training.optimizer': 'adamw', 'lora.r': 4 }, { 'training.optimizer': 'adamw', 'lora.r': 5 },
    { 'training.optimizer': 'sgd', 'lora.r': 3 }, { 'training.optimizer': 'sgd', 'lora.r': 4 }, { 'training.optimizer': 'sgd', 'lora.r': 5 },
  ]);
  assert.ok(Number.isNaN(gridSize([{ key: 'training.lr', dim: dim({ log_uniform: [1e-5, 1e-3] }) }])), 'a continuous field has no grid');
});

test('random: a seed names the same trials every time, another seed other trials; lists of lists are whole choices', () => {
  const space: SpaceField[] = [
    { key: 'training.lr', dim: dim({ log_uniform: [1e-5, 1e-2] }) }, { key: 'training.optimizer', dim: dim(['adamw', 'sgd', 'lion']) },
    { key: 'lora.target_modules', dim: dim([['c_attn'], ['c_attn', 'c_proj']]) }, { key: 'training.warmup_steps', dim: dim({ int_uniform: [0, 10] }) },
  ];
  const a = randomPoints(space, 12, 7);
  assert.deepEqual(randomPoints(space, 12, 7), a);
  assert.notDeepEqual(randomPoints(space, 12, 8), a);
  // Trial i is the same whatever the budget: a larger budget extends the list.
  assert.deepEqual(randomPoints(space, 20, 7).slice(0, 12), a);
  for (const p of a) {
    const lr = p['training.lr'] as number;
    assert.ok(lr >= 1e-5 && lr <= 1e-2, String(lr));
    assert.equal(lr, Number(lr.toPrecision(4)), 'rounded to 4 significant digits');
    assert.ok(['adamw', 'sgd', 'lion'].includes(p['training.optimizer'] as string));
    assert.ok([1, 2].includes((p['lora.target_modules'] as string[]).length));
    assert.ok(Number.isInteger(p['training.warmup_steps']));
  }
});

test('distributions: log_uniform is uniform in the exponent, uniform in the value; int_uniform reaches both ends', () => {
  const n = 4000;
  const rng = new Rng(3);
  const logs = Array.from({ length: n }, () => Math.log10(draw(dim({ log_uniform: [1e-6, 1e-2] }), rng) as number));
  // P(log10 x < -5) = 1/4 for an exponent uniform on [-6, -2]; a uniform value would give 2.5e-3.
  const below = logs.filter((e) => e < -5).length / n;
  assert.ok(Math.abs(below - 0.25) < 0.03, `share below 1e-5: ${below}`);
  const us = Array.from({ length: n }, () => draw(dim({ uniform: [2, 4] }), rng) as number);
  const mean = us.reduce((s, x) => s + x, 0) / n;
  assert.ok(Math.abs(mean - 3) < 0.03 && Math.min(...us) >= 2 && Math.max(...us) <= 4, `mean ${mean}`);
  const ints = new Set(Array.from({ length: 400 }, () => draw(dim({ int_uniform: [1, 4] }), rng)));
  assert.deepEqual([...ints].sort(), [1, 2, 3, 4]);
});

test('an entry that is not a dimension says what is expected', () => {
  assert.match(parseDimension(3e-4) as string, /expected a list of choices or one of \{uniform: \[a, b\]\}.*got 0\.0003; a fixed value belongs in the base job/);
  assert.match(parseDimension([]) as string, /an empty list of choices/);
  assert.match(parseDimension({ lr: [1, 2] }) as string, /got a mapping with lr; nested job fields are written as one dotted key/);
  assert.match(parseDimension({ log_uniform: [0, 1] }) as string, /log_uniform: low must be > 0, got 0/);
  assert.match(parseDimension({ uniform: [3, 1] }) as string, /uniform: low 3 is above high 1/);
  assert.match(parseDimension({ int_uniform: [1, 2.5] }) as string, /int_uniform: expected integers/);
  assert.match(parseDimension({ uniform: [1] }) as string, /uniform: expected \[low, high\]/);
});
