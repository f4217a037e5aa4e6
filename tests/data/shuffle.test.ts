/**
 * The index-level permutation (4 bytes per example) is Rng.shuffle's permutation exactly, so plans and
 * held-out splits made before the cache existed are unchanged; and it is a permutation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { permutation } from '../../src/data/shuffle.ts';
import { Rng } from '../../src/util/rng.ts';

test('permutation(rng, n) == Rng.shuffle([0..n)) for awkward sizes and seeds', () => {
  for (const n of [0, 1, 2, 3, 17, 1000, 65_537]) {
    for (const seed of [0, 7, 0x5eed ^ 3, 4_000_000_007]) {
      const want = new Rng(seed).shuffle([...Array(n).keys()]);
      const got = permutation(new Rng(seed), n);
      assert.ok(got instanceof Uint32Array);
      assert.deepEqual(Array.from(got), want, `n ${n} seed ${seed}`);
    }
  }
  const p = permutation(new Rng(1), 10_000);
  assert.equal(new Set(p).size, 10_000);
  assert.equal(Math.max(...p), 9_999);
});
