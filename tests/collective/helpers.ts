/**
 * Shared test data for the collective tests. Rank r's value at element i is a multiple of 1/8 with
 * |x| <= 64, so any sum of up to 8 ranks is exact in float32 (<= 13 significant bits), the float64
 * reference is exact, and bf16 (8 significant bits) must round most values: its error bound is
 * exercised, not trivially met.
 */
import assert from 'node:assert/strict';
import { GrpcRing } from '../../src/collective/grpc-ring.ts';
import type { GrpcRingOptions } from '../../src/collective/ring-options.ts';
import { useNativeRingKernels } from '../../src/collective/kernels.ts';

export function fillRank(buf: Float32Array, rank: number): Float32Array {
  for (let i = 0; i < buf.length; i++) buf[i] = value(rank, i);
  return buf;
}

export function value(rank: number, i: number): number {
  return (((i * 7919 + rank * 104729) % 1021) - 510) / 8;
}

/** Exact sum over ranks 0..n-1 and sum of magnitudes, element i. */
export function exactSum(n: number, i: number): { sum: number; abs: number } {
  let sum = 0;
  let abs = 0;
  for (let r = 0; r < n; r++) {
    const x = value(r, i);
    sum += x;
    abs += Math.abs(x);
  }
  return { sum, abs };
}

/** Checks `got` against the exact sum (or mean) with an error budget eps * sum|x| (0 = exact). */
export function checkResult(got: Float32Array, n: number, op: 'sum' | 'mean', eps: number): { maxErr: number } {
  let maxErr = 0;
  for (let i = 0; i < got.length; i++) {
    const { sum, abs } = exactSum(n, i);
    const want = op === 'sum' ? sum : sum / n;
    const budget = op === 'sum' ? eps * abs : (eps * abs) / n;
    const err = Math.abs(got[i]! - want);
    if (eps === 0) {
      if (got[i] !== Math.fround(want)) assert.fail(`element ${i}: got ${got[i]}, want ${Math.fround(want)} (n=${n}, ${op})`);
    } else if (!(err <= budget + Math.abs(want) * 2 ** -24)) {
      assert.fail(`element ${i}: got ${got[i]}, want ${want}, error ${err} > bound ${budget} (n=${n}, ${op})`);
    }
    maxErr = Math.max(maxErr, err);
  }
  return { maxErr };
}

/** Asserts every buffer has exactly rank 0's bytes. */
export function assertBitIdentical(bufs: Float32Array[]): void {
  const first = Buffer.from(bufs[0]!.buffer, bufs[0]!.byteOffset, bufs[0]!.byteLength);
  for (let r = 1; r < bufs.length; r++) {
    const b = Buffer.from(bufs[r]!.buffer, bufs[r]!.byteOffset, bufs[r]!.byteLength);
    assert.ok(first.equals(b), `rank ${r} differs from rank 0 in its bytes`);
  }
}

/** The implementations of the gRPC ring transport; the socket-level tests run against each. */
export const TRANSPORTS = ['grpc-js', 'h2', 'raw-h2'] as const;

/** n rings of job 'test-job' (token 'secret') on ephemeral 127.0.0.1 ports, connected. */
export async function formRing(n: number, extra: Partial<GrpcRingOptions> = {}): Promise<GrpcRing[]> {
  const rings = await Promise.all(
    Array.from({ length: n }, (_, rank) => GrpcRing.create({ jobId: 'test-job', rank, worldSize: n, token: 'secret', ...extra })),
  );
  await Promise.all(rings.map((r) => r.connect(rings.map((x) => x.address))));
  return rings;
}

export async function closeAll(rings: GrpcRing[]): Promise<void> {
  await Promise.all(rings.map((r) => r.close()));
}

/** Runs f on the JS path of the ring kernels, then on the native one (kernels.ts), and returns both results. */
export function bothPaths<T>(f: () => T): { js: T; nat: T } {
  useNativeRingKernels(false);
  try {
    const js = f();
    useNativeRingKernels(true);
    return { js, nat: f() };
  } finally {
    useNativeRingKernels(true);
  }
}
