/**
 * The exact tail of an all-reduce (ring-allreduce.ts `exactTail`): under bf16 and fp16 the last k values
 * (a step's loss sum, token count and stop votes) come out with the bits the fp32 codec gives for the same
 * inputs, and within float32 rounding of an independent float64 sum (integers exactly); the values before
 * them are what the lossy codec gave without the tail, except in the message the tail was cut from
 * (fp16 scales per message); replicas stay bit-identical. Over memory peers (a sweep of world sizes,
 * awkward lengths, message sizes and stripes) and over real sockets (N = 3, plain and striped).
 *
 * Tail values: loss sums like 1234.5678 (not a bf16 value), odd counts 257 / 301 / 333 / ... whose sum
 * 891 (N = 3) bf16 cannot hold (8 significant bits: 888 or 892), votes 0 / 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RingSchedule } from '../../src/collective/chunks.ts';
import { bf16, codecs, fp16, fp32, type CodecName, type WireCodec } from '../../src/collective/codecs.ts';
import { ErrorFeedback } from '../../src/collective/error-feedback.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { allReduceBytesPerRank, ringAllReduce } from '../../src/collective/ring-allreduce.ts';
import { stripeChunkRanges } from '../../src/collective/stripes.ts';
import { assertBitIdentical, closeAll, formRing } from './helpers.ts';

const COUNTS = [257, 301, 333, 199, 411];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Rank r's buffer: `length - k` gradient-like values (sign * 2^(-20u) * (1 + v)), then a tail of k. */
function input(length: number, k: number, rank: number): Float32Array {
  const r = rng(1 + rank * 7919 + length);
  const tail = [1234.5678 + 111.1 * rank, COUNTS[rank % COUNTS.length]!, rank % 2];
  return Float32Array.from({ length }, (_, i) =>
    i < length - k ? (r() < 0.5 ? -1 : 1) * 2 ** (-20 * r()) * (1 + r()) : tail[(i - (length - k)) % tail.length]!);
}

/** All-reduce copies of `inputs` over memory peers, one ring per stripe (as GrpcRing stripes a link). */
async function memoryRun(inputs: Float32Array[], codec: WireCodec, maxElements: number, exactTail: number, stripes = 1, efs?: ErrorFeedback[], step = 1): Promise<Float32Array[]> {
  const n = inputs.length;
  const bufs = inputs.map((x) => x.slice());
  const length = bufs[0]!.length;
  for (let stripe = 0; stripe < stripes; stripe++) {
    const chunkRanges = stripes > 1 ? stripeChunkRanges(length, n, stripes, stripe) : undefined;
    const peers = createMemoryRing(n, 2);
    await Promise.all(peers.map((peer, rank) => {
      const reduce = () => ringAllReduce(peer, bufs[rank]!, { rank, worldSize: n, step, op: 'sum', codec, maxElementsPerMessage: maxElements, chunkRanges, exactTail });
      return efs ? efs[rank]!.around(bufs[rank]!, reduce) : reduce();
    }));
  }
  return bufs;
}

/** Positions of the messages that hold any of the last k values when no tail is cut (k = 0's messages). */
function tailMessages(length: number, n: number, maxElements: number, k: number, stripes: number): Uint8Array {
  const mask = new Uint8Array(length);
  for (let stripe = 0; stripe < stripes; stripe++) {
    const s = new RingSchedule(0, n, length, maxElements, stripes > 1 ? stripeChunkRanges(length, n, stripes, stripe) : undefined);
    for (let c = 0; c < n; c++) for (const p of s.parts(c)) if (p.end > length - k) mask.fill(1, p.start, p.end);
  }
  return mask;
}

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** The tail against the fp32 codec's bits and the float64 sum; the rest against the run without a tail. */
function checkTail(label: string, got: Float32Array[], fp32Run: Float32Array[], untailed: Float32Array[], inputs: Float32Array[], k: number, codec: WireCodec, mask: Uint8Array): void {
  assertBitIdentical(got);
  const L = got[0]!.length;
  const g = bits(got[0]!);
  const want = bits(fp32Run[0]!);
  const plain = bits(untailed[0]!);
  for (let i = L - k; i < L; i++) {
    assert.equal(g[i], want[i], `${label}: tail value ${i} is ${got[0]![i]}, the fp32 codec gives ${fp32Run[0]![i]}`);
    let sum = 0;
    let abs = 0;
    for (const x of inputs) {
      sum += x[i]!;
      abs += Math.abs(x[i]!);
    }
    // N-1 float32 adds, each off by at most 2^-24 of a partial sum (<= sum |x|); integers are exact.
    const err = Math.abs(got[0]![i]! - sum);
    assert.ok(err <= (inputs.length - 1) * 2 ** -24 * abs, `${label}: tail value ${i} is ${got[0]![i]}, float64 sum ${sum}`);
    if (inputs.every((x) => Number.isInteger(x[i]))) assert.equal(got[0]![i], sum, `${label}: integer tail value ${i}`);
  }
  for (let i = 0; i < L - k; i++) {
    // bf16 rounds each value alone: every value before the tail is unchanged; fp16 outside the tail's message.
    if (codec === bf16 || !mask[i]) assert.equal(g[i], plain[i], `${label}: value ${i} differs from the run without a tail`);
  }
}

test('exact tail over memory peers: N = 2, 3, 5, lengths 1..1001, tails of 1, 3 and all values, messages of 1..64, 1 and 3 stripes', async () => {
  let cases = 0;
  for (const n of [2, 3, 5]) {
    for (const length of [1, 2, 3, 7, 50, 1001]) {
      for (const k of [...new Set([1, 3, length])].filter((k) => k <= length)) {
        const inputs = Array.from({ length: n }, (_, r) => input(length, k, r));
        for (const maxElements of length > 100 ? [4, 64] : [1, 4, 64]) {
          for (const stripes of [1, 3]) {
            const fp32Run = await memoryRun(inputs, fp32, maxElements, 0, stripes);
            const mask = tailMessages(length, n, maxElements, k, stripes);
            for (const codec of [bf16, fp16]) {
              const label = `n=${n} L=${length} k=${k} max=${maxElements} stripes=${stripes} ${codec.name}`;
              const got = await memoryRun(inputs, codec, maxElements, k, stripes);
              const untailed = await memoryRun(inputs, codec, maxElements, 0, stripes);
              checkTail(label, got, fp32Run, untailed, inputs, k, codec, mask);
              cases++;
            }
          }
        }
      }
    }
  }
  assert.ok(cases > 300, `${cases} cases`);
});

test('exact tail: the lossy codecs do round the tail without it (the test can fail), fp32 ignores it', async () => {
  const inputs = Array.from({ length: 3 }, (_, r) => input(1001, 3, r));
  for (const codec of [bf16, fp16]) {
    const untailed = await memoryRun(inputs, codec, 64, 0);
    // 1234.5678 + 1345.6678 + 1456.7678 is not a bf16 or (at this message's scale) fp16 value.
    assert.notEqual(untailed[0]![998], (await memoryRun(inputs, fp32, 64, 0))[0]![998], `${codec.name} loss sum`);
  }
  // 257 + 301 + 333 = 891 needs 10 significant bits: bf16 gives 888 or 892.
  assert.notEqual((await memoryRun(inputs, bf16, 64, 0))[0]![999], 891);
  assert.equal((await memoryRun(inputs, bf16, 64, 3))[0]![999], 891);
  // fp32 ignores the tail: the same messages (message count) as without it.
  const peers = createMemoryRing(3, 2);
  const bufs = inputs.map((x) => x.slice());
  await Promise.all(peers.map((p, rank) => ringAllReduce(p, bufs[rank]!, { rank, worldSize: 3, step: 1, op: 'sum', codec: fp32, maxElementsPerMessage: 64, exactTail: 3 })));
  const plainPeers = createMemoryRing(3, 2);
  const plain = inputs.map((x) => x.slice());
  await Promise.all(plainPeers.map((p, rank) => ringAllReduce(p, plain[rank]!, { rank, worldSize: 3, step: 1, op: 'sum', codec: fp32, maxElementsPerMessage: 64 })));
  assert.deepEqual(peers.map((p) => p.sent), plainPeers.map((p) => p.sent));
  assert.deepEqual(bufs, plain);
  // A tail longer than the buffer is refused before anything is sent.
  await assert.rejects(ringAllReduce(createMemoryRing(2)[0]!, new Float32Array(2), { rank: 0, worldSize: 2, step: 1, op: 'sum', codec: bf16, maxElementsPerMessage: 4, exactTail: 3 }), /exactTail 3 is not an integer in \[0, 2\]/);
});

test('exact tail costs 2 bytes per tail value per send, and one more message per round of the last chunk', async () => {
  // 2(N-1)/N * (997 * 2 + 3 * 4) at N = 3.
  assert.equal(allReduceBytesPerRank(1000, 3, bf16, 3), Math.round((4 / 3) * (997 * 2 + 12)));
  assert.equal(allReduceBytesPerRank(1000, 3, bf16, 0), Math.round((4 / 3) * 2000));
  assert.equal(allReduceBytesPerRank(1000, 3, fp32, 3), Math.round((4 / 3) * 4000));
  const inputs = Array.from({ length: 3 }, (_, r) => input(1000, 3, r));
  const sent = async (k: number) => {
    const peers = createMemoryRing(3, 2);
    const bufs = inputs.map((x) => x.slice());
    await Promise.all(peers.map((p, rank) => ringAllReduce(p, bufs[rank]!, { rank, worldSize: 3, step: 1, op: 'sum', codec: bf16, maxElementsPerMessage: 64, exactTail: k })));
    return peers.reduce((s, p) => s + p.sent, 0);
  };
  // Chunk 2 = [667, 1000) is sent 2(N-1) = 4 times around the ring, in 6 messages (5 x 64 + 13) without
  // the tail; cut at 997 in 7 (5 x 64 + 10, then [997, 1000)): one more message per send.
  assert.equal((await sent(3)) - (await sent(0)), 4);
});

test('fp16 + error feedback with an exact tail: no residual for the tail even when fed back, the gradient telescopes, 2 steps keep replicas identical', async () => {
  const n = 3;
  const L = 1001;
  const k = 3;
  const maxElements = 64;
  // Feeding back every value (the tail too) shows the tail records no rounding error of its own.
  const all = Array.from({ length: n }, () => new ErrorFeedback(L));
  const inputs = Array.from({ length: n }, (_, r) => input(L, k, r));
  await memoryRun(inputs, fp16, maxElements, k, 1, all);
  for (const ef of all) assert.deepEqual([...ef.current()!.subarray(L - k)], [0, 0, 0]);
  const roundedTail = Array.from({ length: n }, () => new ErrorFeedback(L));
  await memoryRun(inputs, fp16, maxElements, 0, 1, roundedTail);
  assert.ok(roundedTail.some((ef) => ef.current()![L - k] !== 0), 'without the exact tail fp16 rounds the loss sum (the check above can fail)');

  // As the worker runs it: the gradient fed back, two steps.
  const efs = Array.from({ length: n }, () => new ErrorFeedback(L - k));
  for (const step of [1, 2]) {
    const stepInputs = step === 1 ? inputs : Array.from({ length: n }, (_, r) => input(L, k, r + 10));
    const before = efs.map((ef) => ef.current()?.slice() ?? new Float32Array(L));
    const got = await memoryRun(stepInputs, fp16, maxElements, k, 1, efs, step);
    const fp32Run = await memoryRun(stepInputs, fp32, maxElements, 0, 1, undefined, step);
    assertBitIdentical(got);
    for (let i = L - k; i < L; i++) assert.equal(got[0]![i], fp32Run[0]![i], `step ${step}: tail value ${i}`);
    // result = sum_r (g_r + res_r(t-1)) - sum_r res_r(t), up to the float32 adds: no phantom residual
    // in the gradient values of the tail's old message, none missing either.
    for (let i = 0; i < L - k; i++) {
      let sum = 0;
      let s = 0;
      for (let r = 0; r < n; r++) {
        const g = stepInputs[r]![i]! + before[r]![i]!;
        sum += g - efs[r]!.current()![i]!;
        s += Math.abs(g);
      }
      assert.ok(Math.abs(got[0]![i]! - sum) <= 2 * n * 2 ** -24 * (1 + 2 ** -10) * s, `step ${step}, value ${i}: ${got[0]![i]} vs ${sum}`);
    }
    for (const ef of efs) assert.deepEqual([...ef.current()!.subarray(L - k)], [0, 0, 0]);
    assert.ok(efs.some((ef) => ef.current()!.subarray(0, L - k).some((v) => v !== 0)), 'the gradient is rounded and fed back');
  }
});

for (const connections of [1, 2]) {
  test(`exact tail over real sockets, N = 3, ${connections} connection(s) per link: bf16 and fp16 tails are the fp32 codec's bits`, async () => {
    const n = 3;
    const L = 20_003; // 6668-value chunks in 1024-value messages (4 KiB): the tail shares a message without the cut
    const k = 3;
    const rings = await formRing(n, { messageBytes: 4096, largeMessageBytes: 4096, connections });
    try {
      const inputs = Array.from({ length: n }, (_, r) => input(L, k, r));
      let step = 0;
      const run = async (codec: CodecName, exactTail: number) => {
        const bufs = inputs.map((x) => x.slice());
        step++;
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step, codec, exactTail, timeoutMs: 30_000 })));
        return bufs;
      };
      const fp32Run = await run('fp32', 0);
      for (const name of ['bf16', 'fp16'] as const) {
        const bytes0 = rings[0]!.costs.payloadBytesSent;
        const got = await run(name, k);
        assert.equal(rings[0]!.costs.payloadBytesSent - bytes0, allReduceBytesPerRank(L, n, codecs[name], k));
        const untailed = await run(name, 0);
        const mask = tailMessages(L, n, 1024, k, connections);
        checkTail(`${name} connections=${connections}`, got, fp32Run, untailed, inputs, k, codecs[name], mask);
        assert.equal(got[1]![L - 2], 891);
        if (name === 'bf16') assert.notEqual(untailed[1]![L - 2], 891, 'bf16 without the tail rounds the count');
      }
    } finally {
      await closeAll(rings);
    }
  });
}
