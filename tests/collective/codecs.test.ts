import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16, bf16SumErrorBound, fp32 } from '../../src/collective/codecs.ts';

function bf16Of(values: number[]): number[] {
  const src = Float32Array.from(values);
  const wire = new Uint8Array(src.length * 2);
  bf16.encode(src, wire);
  const out = new Float32Array(src.length);
  bf16.decode(wire, out);
  return [...out];
}

test('bf16 rounds to nearest, ties to even, keeps inf/NaN/signed zero (values worked out by hand)', () => {
  // bf16 has 8 significant bits: between 1 and 2 the spacing is 2^-7 = 0.0078125.
  assert.deepEqual(bf16Of([1, 1 + 2 ** -7, 1 + 2 ** -9]), [1, 1.0078125, 1]);
  // Exactly half way: 1 + 2^-8 lies between 1 (even mantissa) and 1 + 2^-7 (odd) -> 1.
  assert.deepEqual(bf16Of([1 + 2 ** -8]), [1]);
  // 1 + 3*2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even) -> 1 + 2^-6.
  assert.deepEqual(bf16Of([1 + 3 * 2 ** -8]), [1 + 2 ** -6]);
  // Just above half way rounds up: 1 + 2^-8 + 2^-20.
  assert.deepEqual(bf16Of([1 + 2 ** -8 + 2 ** -20]), [1.0078125]);
  assert.deepEqual(bf16Of([-3.140625, 65280, Infinity, -Infinity]), [-3.140625, 65280, Infinity, -Infinity]);
  assert.ok(Number.isNaN(bf16Of([NaN])[0]));
  assert.ok(Object.is(bf16Of([-0])[0], -0));
  // Largest finite float32 overflows to +inf, like torch's cast.
  assert.deepEqual(bf16Of([3.4028234663852886e38]), [Infinity]);
});

test('codecs: fp32 is exact, accumulate adds, roundTrip equals decode(encode(x))', () => {
  const x = Float32Array.from({ length: 10_001 }, (_, i) => Math.sin(i) * 1000);
  for (const codec of [fp32, bf16]) {
    const wire = new Uint8Array(x.length * codec.bytesPerElement);
    assert.equal(codec.encode(x, wire), wire.length);
    const decoded = new Float32Array(x.length);
    codec.decode(wire, decoded);
    const rt = x.slice();
    codec.roundTrip(rt);
    assert.deepEqual(rt, decoded);
    const acc = Float32Array.from(x);
    codec.accumulate(wire, acc);
    for (let i = 0; i < x.length; i++) assert.equal(acc[i], Math.fround(x[i]! + decoded[i]!));
    if (codec === fp32) assert.deepEqual(decoded, x);
    else for (let i = 0; i < x.length; i++) assert.ok(Math.abs(decoded[i]! - x[i]!) <= Math.abs(x[i]!) * 2 ** -8);
  }
});

test('bf16 error bound grows linearly with world size and is exact for one rank', () => {
  assert.equal(bf16SumErrorBound(1), 0);
  assert.ok(Math.abs(bf16SumErrorBound(2) - 2 / 256) < 1e-4);
  assert.ok(bf16SumErrorBound(8) > 8 / 256 && bf16SumErrorBound(8) < 8.5 / 256);
});
