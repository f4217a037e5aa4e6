/**
 * The fp16 all-reduce: its documented error bound (fp16SumErrorBound) at N = 2, 3, 4, 8 against the
 * float64 sum, over memory peers and real sockets; and error feedback (error-feedback.ts): over many
 * steps the sum of the all-reduced results tracks the sum of the true gradients within one step's
 * rounding, while without feedback the error grows with the number of steps.
 *
 * Test gradients: float32 values with magnitudes spread over 2^-30..2^0 (most values far below a
 * message's max, as in real gradients), so the absolute floor and the relative term both matter
 * and fp16 rounds nearly every sum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ringAllReduce } from '../../src/collective/ring-allreduce.ts';
import { createMemoryRing } from '../../src/collective/memory-peer.ts';
import { bf16SumErrorBound, fp16 } from '../../src/collective/codecs.ts';
import { fp16SumErrorBound } from '../../src/collective/fp16.ts';
import { ErrorFeedback } from '../../src/collective/error-feedback.ts';
import { assertBitIdentical, closeAll, formRing, TRANSPORTS } from './helpers.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** One rank's gradient-like values: sign * 2^(-30 u) * (1 + v), some exact zeros. */
function gradient(length: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length }, () => (r() < 0.02 ? 0 : (r() < 0.5 ? -1 : 1) * 2 ** (-30 * r()) * (1 + r())));
}

/**
 * Checks a result against the float64 sum: |err_i| <= rel * S_i + abs * max S. Returns the largest
 * error and the largest error relative to S_i where the relative term dominates.
 */
function checkBound(result: Float32Array, inputs: Float32Array[], n: number): { maxErr: number; maxRel: number } {
  const { relative, absolute } = fp16SumErrorBound(n);
  let maxS = 0;
  for (let i = 0; i < result.length; i++) maxS = Math.max(maxS, inputs.reduce((a, x) => a + Math.abs(x[i]!), 0));
  let maxErr = 0;
  let maxRel = 0;
  for (let i = 0; i < result.length; i++) {
    let sum = 0;
    let s = 0;
    for (const x of inputs) {
      sum += x[i]!;
      s += Math.abs(x[i]!);
    }
    const err = Math.abs(result[i]! - sum);
    const bound = relative * s + absolute * maxS;
    if (!(err <= bound)) assert.fail(`element ${i}: got ${result[i]}, want ${sum}, error ${err} > bound ${bound} (n = ${n})`);
    maxErr = Math.max(maxErr, err);
    // Relative error where the relative term dominates (below that the absolute floor does).
    if (s > 0 && absolute * maxS < (relative * s) / 100) maxRel = Math.max(maxRel, err / s);
  }
  return { maxErr, maxRel };
}

async function memoryAllReduce(bufs: Float32Array[], maxElements: number, step = 1, efs?: ErrorFeedback[]): Promise<void> {
  const n = bufs.length;
  const peers = createMemoryRing(n, 2);
  await Promise.all(
    peers.map((peer, rank) => {
      const reduce = () => ringAllReduce(peer, bufs[rank]!, { rank, worldSize: n, step, op: 'sum', codec: fp16, maxElementsPerMessage: maxElements });
      return efs ? efs[rank]!.around(bufs[rank]!, reduce) : reduce();
    }),
  );
}

test('fp16 all-reduce over memory peers stays within its documented bound at N = 2, 3, 4, 8 (lengths 0..100_003)', async () => {
  for (const n of [2, 3, 4, 8]) {
    for (const [length, maxElements] of [[0, 3], [1, 3], [7, 3], [1000, 17], [100_003, 4096]] as const) {
      const inputs = Array.from({ length: n }, (_, r) => gradient(length, 1000 * n + r + length));
      const bufs = inputs.map((x) => x.slice());
      await memoryAllReduce(bufs, maxElements);
      assertBitIdentical(bufs);
      const { maxErr, maxRel } = checkBound(bufs[0]!, inputs, n);
      if (length >= 1000) {
        assert.ok(maxErr > 0, `n=${n} length=${length}: fp16 rounded nothing; the test values do not exercise the bound`);
        // fp16 uses a good part of its relative bound, and stays well inside bf16's for the same data.
        assert.ok(maxRel > fp16SumErrorBound(n).relative / 8, `n=${n}: max relative error ${maxRel} is far below the bound`);
        assert.ok(maxRel < bf16SumErrorBound(n) / 4, `n=${n}: max relative error ${maxRel} is not finer than bf16's bound`);
      }
    }
  }
});

test('fp16 bound constants: exact for one rank, u = 2^-11 per rounding, absolute floor 2^-39 per rank', () => {
  assert.deepEqual(fp16SumErrorBound(1), { relative: 0, absolute: 0 });
  const b2 = fp16SumErrorBound(2);
  assert.ok(Math.abs(b2.relative - 2 * 2 ** -11) < 1e-5 && b2.absolute > 2 * 2 ** -39 && b2.absolute < 2.01 * 2 ** -39);
  // fp16 is 8x finer than bf16 at the same world size (to first order).
  assert.ok(Math.abs(bf16SumErrorBound(4) / fp16SumErrorBound(4).relative - 8) < 0.2);
});

for (const n of [2, 4]) {
  test(`error feedback, N = ${n}: the sum of the all-reduced results tracks the true sum over 40 steps; without it the error grows`, async () => {
    const length = 20_000;
    const steps = 40;
    const maxElements = 2048;
    // Each rank's gradient: a fixed part (so rounding errors repeat and add up without feedback) plus noise.
    const fixed = Array.from({ length: n }, (_, r) => gradient(length, 77 + r));
    const truth = new Float64Array(length);
    const withEf = new Float64Array(length);
    const without = new Float64Array(length);
    const efs = Array.from({ length: n }, () => new ErrorFeedback(length));
    let lastStepS = new Float64Array(length);
    const sumS = new Float64Array(length); // sum over steps of S_i, for the float32 adds' slack
    const maxStepS = new Float64Array(length);
    for (let t = 1; t <= steps; t++) {
      const grads = fixed.map((f, r) => {
        const noise = gradient(length, t * 31 + r);
        return Float32Array.from(f, (v, i) => v + noise[i]! / 16);
      });
      for (const g of grads) for (let i = 0; i < length; i++) truth[i] += g[i]!;
      const a = grads.map((g) => g.slice());
      await memoryAllReduce(a, maxElements, t, efs);
      assertBitIdentical(a);
      const b = grads.map((g) => g.slice());
      await memoryAllReduce(b, maxElements, t);
      for (let i = 0; i < length; i++) {
        withEf[i] += a[0]![i]!;
        without[i] += b[0]![i]!;
      }
      lastStepS = Float64Array.from({ length }, (_, i) => grads.reduce((s, g) => s + Math.abs(g[i]!), 0));
      for (let i = 0; i < length; i++) {
        sumS[i] += lastStepS[i]!;
        maxStepS[i] = Math.max(maxStepS[i]!, lastStepS[i]!);
      }
    }
    // Telescoping: sum of results = true sum - sum of the ranks' last residuals (up to float32 adds).
    const { relative, absolute } = fp16SumErrorBound(n);
    const maxS = lastStepS.reduce((m, s) => Math.max(m, s), 0);
    let efErr = 0;
    let plainErr = 0;
    for (let i = 0; i < length; i++) {
      const residual = efs.reduce((s, ef) => s + ef.current()![i]!, 0);
      // Not fed back: per step, each rank's float32 add of residual + gradient and the ring's N-1 adds,
      // each off by at most 2^-24 of a partial sum (<= S_i (1 + 2^-10) with the residual riding on it).
      const addSlack = 2 * n * 2 ** -24 * (1 + 2 ** -10) * sumS[i]!;
      const gap = Math.abs(withEf[i]! - (truth[i]! - residual));
      assert.ok(gap <= addSlack, `element ${i}: sum of results ${withEf[i]} != true sum ${truth[i]} - residual ${residual} (gap ${gap} > ${addSlack})`);
      // The residual stays within one step's rounding bound (the largest step's: a residual rides on the
      // next gradient, and 2x covers that), not growing with the number of steps.
      assert.ok(Math.abs(residual) <= 2 * (relative * maxStepS[i]! + absolute * maxS), `element ${i}: residual ${residual} unbounded`);
      efErr = Math.max(efErr, Math.abs(withEf[i]! - truth[i]!));
      plainErr = Math.max(plainErr, Math.abs(without[i]! - truth[i]!));
    }
    assert.ok(efErr > 0, 'error feedback made the sum exact: the test does not exercise rounding');
    assert.ok(efErr * 5 < plainErr, `error feedback did not help: max accumulated error ${efErr} with, ${plainErr} without`);
  });
}

test('error feedback feeds back only the leading values it is told to (the loss sum and token count are not)', async () => {
  const n = 2;
  const efs = [new ErrorFeedback(3), new ErrorFeedback(3)];
  const bufs = [Float32Array.from([1 / 3, 2 / 3, 1 / 7, 1000.3, 1e-3]), Float32Array.from([1 / 5, 1 / 9, 3 / 7, 999.9, 2e-3])];
  await memoryAllReduce(bufs, 8, 1, efs);
  const res = efs.map((ef) => ef.current()!);
  assert.ok(res.some((r) => r.subarray(0, 3).some((v) => v !== 0)), 'some rounding error is kept for the gradient part');
  for (const r of res) assert.deepEqual([...r.subarray(3)], [0, 0], 'no residual kept after the fed-back part');
});

for (const transport of TRANSPORTS) {
  test(`[${transport}] fp16 over real sockets, N = 3: within the bound, bit-identical, messages of 3 values and of 64 KiB`, async () => {
    for (const messageBytes of [12, 64 * 1024]) {
      const rings = await formRing(3, { transport, messageBytes });
      try {
        const length = messageBytes === 12 ? 1001 : 300_007;
        const inputs = Array.from({ length: 3 }, (_, r) => gradient(length, 5 + r));
        const bufs = inputs.map((x) => x.slice());
        await Promise.all(rings.map((ring, r) => ring.allReduce(bufs[r]!, { step: 1, codec: 'fp16', timeoutMs: 30_000 })));
        assertBitIdentical(bufs);
        assert.ok(checkBound(bufs[1]!, inputs, 3).maxErr > 0);
      } finally {
        await closeAll(rings);
      }
    }
  });
}
