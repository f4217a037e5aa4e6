/**
 * npm run bench:ring-kernels — the ring's per-byte loops (src/collective/codecs.ts) on one 1 MiB fp32
 * message (262,144 values, the ring's default message), JavaScript path vs native kernels
 * (native/src/collective.cc), with a memcpy (TypedArray.set) of the same bytes as the yardstick.
 * GB/s counts the fp32 bytes of the message (4 per value) whatever the codec. One process, in cache:
 * the upper bound of what each loop costs inside a collective. fp16 rows include its per-message
 * exponent (the max |x| scan on encode and roundTrip). Writes bench/results/ring-kernels.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { bf16, fp16, fp32 } from '../src/collective/codecs.ts';
import { ringKernelsStatus, useNativeRingKernels } from '../src/collective/kernels.ts';

const n = 262_144;
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const dst = new Float32Array(n).fill(1);
const wire32 = new Uint8Array(4 * n);
const wire16 = new Uint8Array(2 * n);
const wireF16 = new Uint8Array(fp16.payloadBytes(n));
fp32.encode(x, wire32);
bf16.encode(x, wire16);
fp16.encode(x, wireF16);

/** Median microseconds per call over 7 batches of 50 calls, after 50 warm-up calls. */
function time(f: () => void): number {
  for (let i = 0; i < 50; i++) f();
  const batches: number[] = [];
  for (let b = 0; b < 7; b++) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) f();
    batches.push(((performance.now() - t0) / 50) * 1000);
  }
  return batches.sort((a, b) => a - b)[3]!;
}

const loops: Array<[string, () => void]> = [
  ['fp32 accumulate (reduce-scatter add)', () => fp32.accumulate(wire32, dst)],
  ['bf16 encode (send)', () => bf16.encode(x, wire16)],
  ['bf16 decode (all-gather receive)', () => bf16.decode(wire16, dst)],
  ['bf16 accumulate (reduce-scatter add)', () => bf16.accumulate(wire16, dst)],
  ['bf16 roundTrip (owner, once per chunk)', () => bf16.roundTrip(dst)],
  ['fp16 encode (send)', () => fp16.encode(x, wireF16)],
  ['fp16 decode (all-gather receive)', () => fp16.decode(wireF16, dst)],
  ['fp16 accumulate (reduce-scatter add)', () => fp16.accumulate(wireF16, dst)],
  ['fp16 roundTrip (owner, once per chunk)', () => fp16.roundTrip(dst)],
  ['memcpy of the fp32 bytes (yardstick)', () => dst.set(x)],
];
const load = loadavg();
console.log(`native kernels: ${ringKernelsStatus()}; load average ${load.map((l) => l.toFixed(2)).join(' ')}`);
console.log('| loop (1 MiB fp32 message) | JS us | JS GB/s | native us | native GB/s | native / JS |');
console.log('|---|---|---|---|---|---|');
const rows: Array<{ loop: string; jsMicros: number; nativeMicros: number; jsGBps: number; nativeGBps: number }> = [];
for (const [name, f] of loops) {
  useNativeRingKernels(false);
  const js = time(f);
  useNativeRingKernels(true);
  const nat = time(f);
  const gbs = (us: number) => (4 * n) / us / 1e3;
  rows.push({ loop: name, jsMicros: js, nativeMicros: nat, jsGBps: gbs(js), nativeGBps: gbs(nat) });
  console.log(`| ${name} | ${js.toFixed(0)} | ${gbs(js).toFixed(1)} | ${nat.toFixed(0)} | ${gbs(nat).toFixed(1)} | ${(js / nat).toFixed(1)}x |`);
}
const dir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(dir, { recursive: true });
const out = { command: 'npm run bench:ring-kernels', values: n, kernels: ringKernelsStatus(), loadAverage: { start: load, end: loadavg() }, rows };
writeFileSync(`${dir}ring-kernels.json`, `${JSON.stringify(out, null, 2)}\n`);
console.log('wrote bench/results/ring-kernels.json');
