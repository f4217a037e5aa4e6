// The ring algorithm alone, over in-memory peers with 2-message queues: world sizes 1..8 against
// awkward lengths (0, 1, 7, not divisible by N, > 1M), exactly known sums, both codecs, sum and mean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ringAllReduce, type ReduceOp } from '../../src/collective/ring-allreduce.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { bf16, bf16SumErrorBound, codecs, fp32, type CodecName } from '../../src/collective/codecs.ts';
import { assertBitIdentical, checkResult, fillRank } from './helpers.ts';

async function run(n: number, length: number, codec: CodecName, op: ReduceOp, maxElements: number, capacity = 2) {
  const peers = createMemoryRing(n, capacity);
  const bufs = peers.map((_, r) => fillRank(new Float32Array(length), r));
  await Promise.all(
    peers.map((peer, rank) =>
      ringAllReduce(peer, bufs[rank]!, { rank, worldSize: n, step: 1, op, codec: codecs[codec], maxElementsPerMessage: maxElements }),
    ),
  );
  return { bufs, peers };
}

for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`ring all-reduce over memory peers, world size ${n}`, async () => {
    for (const length of [0, 1, 7, 1000, 1_000_003]) {
      // Small messages for small buffers so chunks split into many pipelined parts.
      const maxElements = length > 10_000 ? 65_536 : 3;
      for (const codec of ['fp32', 'bf16'] as const) {
        for (const op of ['sum', 'mean'] as const) {
          if (length === 1_000_003 && op === 'mean' && n % 2 === 0) continue; // keep runtime sane
          const { bufs } = await run(n, length, codec, op, maxElements);
          const eps = codec === 'fp32' ? 0 : bf16SumErrorBound(n);
          for (const buf of bufs) checkResult(buf, n, op, eps);
          assertBitIdentical(bufs);
        }
      }
    }
  });
}

test('bf16 really rounds (the bound is exercised, not trivially met) and halves the bytes', async () => {
  const { bufs } = await run(4, 1000, 'bf16', 'sum', 100);
  const { maxErr } = checkResult(bufs[0]!, 4, 'sum', bf16SumErrorBound(4));
  assert.ok(maxErr > 0, 'bf16 result was exact: test values do not exercise rounding');
  assert.equal(bf16.bytesPerElement * 2, fp32.bytesPerElement);
});

test('each rank sends exactly 2(N-1) chunks worth of messages, one-message queues do not deadlock', async () => {
  const n = 5;
  const { peers, bufs } = await run(n, 1003, 'fp32', 'sum', 10, 1);
  // 1003 / 5 -> chunks of 201 or 200 values -> 21 or 20 parts; every chunk travels 2(N-1) = 8 rounds.
  for (const p of peers) assert.ok(p.sent >= 8 * 20 && p.sent <= 8 * 21, `rank ${p.rank} sent ${p.sent}`);
  checkResult(bufs[2]!, n, 'sum', 0);
});

test('a failing peer fails every rank instead of hanging', async () => {
  const peers = createMemoryRing(3);
  const bufs = peers.map((_, r) => fillRank(new Float32Array(100), r));
  const opts = (rank: number) => ({ rank, worldSize: 3, step: 1, op: 'sum' as const, codec: fp32, maxElementsPerMessage: 4 });
  const runs = [ringAllReduce(peers[0]!, bufs[0]!, opts(0)), ringAllReduce(peers[1]!, bufs[1]!, opts(1))];
  // Rank 2 never runs; abort from outside like a timeout would.
  setTimeout(() => peers[2]!.abort(new Error('rank 2 gone')), 20);
  for (const r of runs) await assert.rejects(r, /rank 2 gone/);
});
