import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exactSumAdd, exactSumMerge, exactSumValue } from '../../src/eval/exact-sum.ts';
import { rng, shuffle } from './helpers.ts';

const fsum = (xs: number[]) => exactSumValue(xs.reduce((p, x) => exactSumAdd(p, x), [] as number[]));

test('sums that naive float addition gets wrong (Python math.fsum doc examples)', () => {
  // sum([.1]*10) = 0.9999999999999999 in floats; fsum gives 1.0
  assert.equal(fsum(new Array(10).fill(0.1)), 1);
  // 1e100 + 1 - 1e100 = 1 exactly; naive gives 0
  assert.equal(fsum([1e100, 1, -1e100]), 1);
  // half-way case: 1 + 2^-53 + 2^-106: the tail breaks the tie upwards -> 1 + 2^-52
  assert.equal(fsum([1, 2 ** -53, 2 ** -106]), 1 + 2 ** -52);
  assert.equal(fsum([1, 2 ** -53]), 1); // exact tie -> even
  assert.equal(fsum([]), 0);
});

test('the value does not depend on order or on how partial sums were merged', () => {
  const rand = rng(2);
  const xs = Array.from({ length: 500 }, () => (rand() - 0.3) * 10 ** Math.floor(rand() * 12 - 6));
  const expected = fsum(xs);
  for (let t = 0; t < 20; t++) {
    const ys = shuffle(xs, rand);
    const cut = Math.floor(rand() * ys.length);
    const a = ys.slice(0, cut).reduce((p, x) => exactSumAdd(p, x), [] as number[]);
    const b = ys.slice(cut).reduce((p, x) => exactSumAdd(p, x), [] as number[]);
    assert.equal(exactSumValue(exactSumMerge(b, a)), expected);
    assert.equal(exactSumValue(JSON.parse(JSON.stringify(exactSumMerge(a, b)))), expected);
  }
});

test('exact for integers past 2^53 where float addition loses them', () => {
  // 2^53 + 1 + 1 = 2^53 + 2 exactly; left-to-right float addition gives 2^53
  assert.equal(fsum([2 ** 53, 1, 1]), 2 ** 53 + 2);
  assert.equal(2 ** 53 + 1 + 1, 2 ** 53);
});
