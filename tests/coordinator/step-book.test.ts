/**
 * coordinator/step-book.ts: a step completes when every rank reported it, whatever the arrival order;
 * its numbers are rank 0's all-reduced values, summed tokens and samples, and the timing spread;
 * on hash steps the ranks are grouped by parameter hash.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ControlMessages } from '../../src/control/bus.ts';
import { describeHashGroups, StepBook, stepRanges } from '../../src/coordinator/step-book.ts';

type StepReport = ControlMessages['StepReport'];

const report = (rank: number, step: number, o: Partial<StepReport> = {}): StepReport => ({
  runId: 'r', rank, step, loss: 2 + rank, count: 16, gradNorm: 0.5 + rank, lr: 1e-3 * (rank + 1), inputTokens: 100, samples: 4,
  computeMs: 10, reduceMs: 5, paramHash: '', reduceBytes: 0, ...o,
});

test('nothing until every rank reported; then totals, rank 0 values, min/max timings by hand', () => {
  const book = new StepBook();
  const reports = [
    report(2, 7, { inputTokens: 130, samples: 5, computeMs: 40.4, reduceMs: 2.6, reduceBytes: 800 }),
    report(0, 7, { inputTokens: 100, samples: 4, computeMs: 30, reduceMs: 20.5, reduceBytes: 800, loss: 1.75, lr: 2e-4, gradNorm: 0.9, count: 48 }),
    report(1, 7, { inputTokens: 70, samples: 3, computeMs: 35, reduceMs: 9.4, reduceBytes: 800 }),
  ];
  assert.equal(book.add(reports[0], 3), undefined);
  assert.equal(book.add(reports[1], 3), undefined);
  const s = book.add(reports[2], 3);
  assert.ok(s);
  // slowest rank: 30 + 20.5 = 50.5 ms (rank 0); 300 tokens / 0.0505 s = 5940.59 -> 5941
  assert.deepEqual({ ...s, hashGroups: undefined }, {
    step: 7, loss: 1.75, lr: 2e-4, gradNorm: 0.9, count: 48, tokens: 300, samples: 12, tokensPerSecond: 5941, workers: 3,
    computeMs: 40, reduceMsMin: 3, reduceMs: 21, reduceBytes: 800, hashGroups: undefined,
  });
  assert.equal(s.hashGroups, undefined); // not a hash step: no paramHash
  assert.equal(book.add(report(0, 7), 3), undefined); // a completed step starts over, it does not complete twice
});

test('steps are kept apart: step 2 may fill up while step 1 still waits for a rank', () => {
  const book = new StepBook();
  assert.equal(book.add(report(1, 1), 2), undefined);
  assert.equal(book.add(report(1, 2, { loss: 9 }), 2), undefined);
  assert.equal(book.add(report(0, 2, { loss: 1.5 }), 2)?.loss, 1.5);
  const one = book.add(report(0, 1, { loss: 2.5 }), 2);
  assert.equal(one?.step, 1);
  assert.equal(one?.loss, 2.5);
  // A rank that reports twice is counted once (the later report wins).
  assert.equal(book.add(report(1, 3, { inputTokens: 1 }), 2), undefined);
  assert.equal(book.add(report(1, 3, { inputTokens: 7 }), 2), undefined);
  assert.equal(book.add(report(0, 3, { inputTokens: 5 }), 2)?.tokens, 12);
});

test('hash steps: one group when every rank agrees, otherwise groups by hash in arrival order', () => {
  const book = new StepBook();
  const same = [0, 1, 2].map((r) => book.add(report(r, 10, { paramHash: 'aa11' }), 3)).at(-1);
  assert.deepEqual([...same!.hashGroups!], [['aa11', [0, 1, 2]]]);
  const diverged = [report(1, 20, { paramHash: 'bb22' }), report(0, 20, { paramHash: 'aa11' }), report(2, 20, { paramHash: 'bb22' }), report(3, 20, { paramHash: 'aa11' })]
    .map((r) => book.add(r, 4)).at(-1);
  assert.deepEqual([...diverged!.hashGroups!], [['bb22', [1, 2]], ['aa11', [0, 3]]]);
  assert.equal(describeHashGroups(diverged!.hashGroups!), 'ranks 1,2: bb22; ranks 0,3: aa11');
});

test('a world of one completes every step at once', () => {
  const s = new StepBook().add(report(0, 1, { inputTokens: 64, computeMs: 8, reduceMs: 0 }), 1);
  assert.equal(s?.tokensPerSecond, 8000);
  assert.equal(s?.reduceMsMin, 0);
});

test('contiguous stops below a hole; startAt with steps recorded above a hole; completeThrough names the steps nobody reported', () => {
  const book = new StepBook();
  book.startAt(0);
  for (const step of [1, 3, 4]) for (const rank of [0, 1]) book.add(report(rank, step), 2);
  assert.equal(book.contiguous, 1, 'step 2 is missing: 3 and 4 are not acknowledged');
  for (const rank of [0, 1]) book.add(report(rank, 2), 2);
  assert.equal(book.contiguous, 4);

  // A taking-over coordinator: metrics.jsonl holds 1-3 and 6-7 (4 and 5 lost with the killed one).
  const taken = new StepBook();
  taken.startAt(3, [6, 7, 2]);
  assert.equal(taken.contiguous, 3);
  assert.equal(taken.add(report(0, 6), 1), undefined, 'a recorded step is not completed again');
  assert.equal(taken.add(report(0, 4), 1)?.step, 4);
  assert.equal(taken.contiguous, 4);
  assert.equal(taken.add(report(0, 5), 1)?.step, 5);
  assert.equal(taken.contiguous, 7, 'the hole filled: 6 and 7 were in already');

  // A re-form at 12: 9 has a report, 11 is complete, 10 and 12 had none.
  taken.add(report(0, 8), 1);
  taken.add(report(0, 9), 2);
  taken.add(report(0, 11), 1);
  const { partial, missing } = taken.completeThrough(12);
  assert.deepEqual(partial.map((s) => s.step), [9]);
  assert.deepEqual(missing, [10, 12]);
  assert.equal(taken.contiguous, 12);
  assert.equal(stepRanges([4, 5, 6, 9, 11, 12]), '4-6, 9, 11-12');
});
