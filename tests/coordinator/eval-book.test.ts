/**
 * coordinator/eval-book.ts: the merged evaluation appears once every rank sent its state for that
 * step, and is bit-identical whatever order the ranks' reports arrived in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EvalBook } from '../../src/coordinator/eval-book.ts';
import { addClassification, addLoss, emptyEvalState, evalResult, type EvalState } from '../../src/eval/eval-state.ts';

const permutations = <T>(xs: T[]): T[][] => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])));

/** Rank k's shard; sums of 1e16 beside 0.1 make a plain float sum order-dependent. */
function shard(rank: number): EvalState {
  const s = emptyEvalState({ numClasses: 2 });
  const losses = [[1e16, 0.1, 0.3], [1, 0.2, 1e16], [0.7, 1, 1]][rank];
  losses.forEach((l, i) => {
    addLoss(s, l, 1);
    addClassification(s, (rank + i) % 2, i % 2);
  });
  return s;
}

test('merged once all ranks reported, bit-identical for every arrival order, equal to one pass', () => {
  const whole = emptyEvalState({ numClasses: 2 });
  for (let rank = 0; rank < 3; rank++) {
    [[1e16, 0.1, 0.3], [1, 0.2, 1e16], [0.7, 1, 1]][rank].forEach((l, i) => {
      addLoss(whole, l, 1);
      addClassification(whole, (rank + i) % 2, i % 2);
    });
  }
  const expected = evalResult(whole);
  for (const order of permutations([0, 1, 2])) {
    const book = new EvalBook();
    const results = order.map((rank) => book.add(5, rank, JSON.parse(JSON.stringify(shard(rank))), 3));
    assert.deepEqual(results.slice(0, 2), [undefined, undefined], `${order}`);
    assert.deepStrictEqual(results[2]?.result, expected, `${order}`);
    assert.deepStrictEqual(results[2]?.state.classification, whole.classification, `${order}`);
  }
  // The plain float sum of the same losses does depend on the order (so the check above means something).
  assert.notEqual(1e16 + 1 + 1 + 0.1, 1 + 1 + 0.1 + 1e16);
});

test('steps are kept apart and a finished step starts over', () => {
  const book = new EvalBook();
  const one = (loss: number) => {
    const s = emptyEvalState();
    addLoss(s, loss, 2);
    return s;
  };
  assert.equal(book.add(5, 0, one(2), 2), undefined);
  assert.equal(book.add(10, 1, one(6), 2), undefined);
  assert.equal(book.add(10, 0, one(2), 2)?.result.loss, 2); // (6 + 2) / 4
  assert.equal(book.add(5, 1, one(4), 2)?.result.loss, 1.5); // (2 + 4) / 4
  assert.equal(book.add(5, 0, one(4), 2), undefined);
});
