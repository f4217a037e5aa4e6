/**
 * coordinator/step-book.ts: a step completes when every rank reported it, whatever the arrival order;
 * its numbers are rank 0's all-reduced values, summed tokens and samples, and the timing spread;
 * on hash steps the ranks are grouped by parameter hash.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ControlMessages } from '../../src/control/bus.ts';
import { describeHashGroups, StepBook } from '../../src/coordinator/step-book.ts';

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
