import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkRange, partCount, partRange, RingSchedule } from '../../src/collective/chunks.ts';

test('chunks tile the buffer, differ by at most one element, in order', () => {
  for (const n of [1, 2, 3, 5, 8]) {
    for (const length of [0, 1, 2, 7, 8, 1000, 1_000_003]) {
      let next = 0;
      const sizes: number[] = [];
      for (let c = 0; c < n; c++) {
        const r = chunkRange(length, n, c);
        assert.equal(r.start, next, `n=${n} L=${length} chunk ${c} starts where the previous ended`);
        sizes.push(r.end - r.start);
        next = r.end;
      }
      assert.equal(next, length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
    }
  }
  // Worked example from chunks.ts: 7 elements, 3 ranks -> [0,3) [3,5) [5,7).
  assert.deepEqual([0, 1, 2].map((c) => chunkRange(7, 3, c)), [{ start: 0, end: 3 }, { start: 3, end: 5 }, { start: 5, end: 7 }]);
});

test('parts split a chunk into messages of at most maxElements, at least one even when empty', () => {
  assert.equal(partCount({ start: 5, end: 5 }, 4), 1);
  assert.deepEqual(partRange({ start: 5, end: 5 }, 4, 0), { start: 5, end: 5 });
  assert.equal(partCount({ start: 3, end: 13 }, 4), 3);
  assert.deepEqual([0, 1, 2].map((p) => partRange({ start: 3, end: 13 }, 4, p)), [
    { start: 3, end: 7 }, { start: 7, end: 11 }, { start: 11, end: 13 },
  ]);
});

test('schedule: the chunk sent in round s is the chunk received in round s-1; rank r ends owning chunk r+1', () => {
  for (const n of [2, 3, 4, 7]) {
    for (let rank = 0; rank < n; rank++) {
      const s = new RingSchedule(rank, n, 100, 7);
      assert.equal(s.rounds, 2 * (n - 1));
      assert.equal(s.sendChunk(0), rank);
      for (let round = 1; round < s.rounds; round++) assert.equal(s.sendChunk(round), s.recvChunk(round - 1));
      assert.equal(s.recvChunk(n - 2), (rank + 1) % n, 'last reduce-scatter round completes chunk rank+1');
      assert.equal(s.sendChunk(n - 1), (rank + 1) % n, 'first all-gather round sends the owned chunk');
      // Rank r receives in round s exactly what rank r-1 sends in round s.
      const left = new RingSchedule((rank - 1 + n) % n, n, 100, 7);
      for (let round = 0; round < s.rounds; round++) assert.equal(s.recvChunk(round), left.sendChunk(round));
      // All-gather delivers every chunk except the owned one exactly once.
      const gathered = Array.from({ length: n - 1 }, (_, k) => s.recvChunk(n - 1 + k)).sort();
      assert.deepEqual(gathered, Array.from({ length: n }, (_, c) => c).filter((c) => c !== (rank + 1) % n));
    }
  }
});

test('exactFrom cuts the chunk that holds it there, each side into parts; other chunks and the message count follow', () => {
  // Worked example from chunks.ts: length 10, N = 2, maxElements 4, exactFrom 7.
  const s = new RingSchedule(0, 2, 10, 4, undefined, 7);
  assert.deepEqual(s.parts(0), [{ start: 0, end: 4 }, { start: 4, end: 5 }]);
  assert.deepEqual(s.parts(1), [{ start: 5, end: 7 }, { start: 7, end: 10 }]);
  assert.deepEqual(new RingSchedule(0, 2, 10, 4).parts(1), [{ start: 5, end: 9 }, { start: 9, end: 10 }]);
  // Cut at a chunk boundary or at the end: nothing to cut.
  assert.deepEqual(new RingSchedule(0, 2, 10, 4, undefined, 5).parts(1), [{ start: 5, end: 9 }, { start: 9, end: 10 }]);
  assert.deepEqual(new RingSchedule(0, 2, 10, 4, undefined, 10).parts(1), [{ start: 5, end: 9 }, { start: 9, end: 10 }]);
  // Rank 0 receives chunk 1 (round 0) then chunk 0 (round 1): 2 + 2 messages; recvIndex follows the cut.
  assert.equal(s.totalMessages, 4);
  assert.equal(s.recvIndex(1, 0), 2);
  assert.throws(() => new RingSchedule(0, 2, 10, 4, undefined, 11), /exactFrom 11 outside \[0, 10\]/);
});
