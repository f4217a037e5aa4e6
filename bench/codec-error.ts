/**
 * npm run bench:codec-error — how far the all-reduced gradient lands from the exact sum, per wire
 * codec, on real gradients of a GPT-2-small-shaped model (vocab 50257, d 768, 12 layers, 124M values).
 *
 *   1. P gradients: a randomly initialised GPT-2 small (seed 1), one forward + backward each on a
 *      different 64-token window of assets/corpus/general.txt (its bytes as token ids), loss summed
 *      over tokens as the worker reduces it (src/train/train-step.ts).
 *   2. One step, N = 2 and 4 ranks (rank r holds gradient r): ring all-reduce over memory peers with
 *      fp32 / bf16 / fp16 in 1 MiB messages (the default), compared with the float64 sum:
 *      relative L2 error ||got - exact|| / ||exact|| and max |got - exact| / max |exact|.
 *   3. K steps, N = 2 (step t, rank r holds gradient (t*N + r) mod P): the summed update
 *      sum_t result_t against sum_t exact_t for bf16, fp16 and fp16 with error feedback.
 *
 * Options: --pool P (default 4), --steps K (default 8), --seq T (default 64), --parts one-step,steps
 * (default both). Needs ~(2P + 6) x 0.5 GB; on a loaded 2-core machine the gradients take minutes each.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { codecs, type CodecName } from '../src/collective/codecs.ts';
import { ErrorFeedback } from '../src/collective/error-feedback.ts';
import { ringKernelsStatus } from '../src/collective/kernels.ts';
import { createMemoryRing } from '../src/collective/memory-peer.ts';
import { ringAllReduce } from '../src/collective/ring-allreduce.ts';
import { backendChoiceFrom, initBackend } from '../src/model/backend.ts';
import { Model } from '../src/model/model.ts';
import { shapeConfig } from '../src/model/presets.ts';
import { FlatParams } from '../src/train/flat-params.ts';
import { crossEntropySum } from '../src/train/loss.ts';

const { values: args } = parseArgs({ options: { pool: { type: 'string' }, steps: { type: 'string' }, seq: { type: 'string' }, parts: { type: 'string' } } });
const parts = new Set((args.parts ?? 'one-step,steps').split(','));
const P = Number(args.pool ?? 4);
const K = Number(args.steps ?? 8);
const T = Number(args.seq ?? 64);
const MESSAGE = 262_144; // 1 MiB of fp32, the ring's default message

await initBackend(backendChoiceFrom(undefined));
const cfg = shapeConfig('gpt2', { vocab: 50257, d: 768, layers: 12, heads: 12, kvHeads: 12, positions: 1024 });
const model = Model.random(cfg, 'causal-lm', 1);
const flat = new FlatParams(model);
const text = readFileSync(new URL('../assets/corpus/general.txt', import.meta.url));
const pool: Float32Array[] = [];
for (let p = 0; p < P; p++) {
  const t0 = performance.now();
  const start = 1000 + p * 7919;
  const ids = Int32Array.from(text.subarray(start, start + T));
  const targets = Int32Array.from(text.subarray(start + 1, start + T + 1));
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.forward({ ids: tf.tensor2d(ids, [1, T], 'int32') });
    return crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.ones([T]));
  }, model.variables());
  const loss = (await value.data())[0]! / T;
  await flat.readGrads(grads, false);
  tf.dispose([value, ...Object.values(grads)]);
  pool.push(flat.grads.slice());
  console.error(`gradient ${p + 1}/${P}: ${flat.grads.length} values, loss ${loss.toFixed(3)}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
model.dispose();
const L = pool[0]!.length;

async function allReduce(bufs: Float32Array[], codec: CodecName, efs?: ErrorFeedback[], step = 1): Promise<void> {
  const peers = createMemoryRing(bufs.length, 2);
  await Promise.all(peers.map((peer, rank) => {
    const reduce = () => ringAllReduce(peer, bufs[rank]!, { rank, worldSize: bufs.length, step, op: 'sum', codec: codecs[codec], maxElementsPerMessage: MESSAGE });
    return efs ? efs[rank]!.around(bufs[rank]!, reduce) : reduce();
  }));
}

/** ||got - exact|| / ||exact|| and max|got - exact| / max|exact| (exact in float64). */
function errors(got: ArrayLike<number>, exact: ArrayLike<number>): { relL2: number; relMax: number } {
  let d2 = 0, e2 = 0, dMax = 0, eMax = 0;
  for (let i = 0; i < L; i++) {
    const d = got[i]! - exact[i]!;
    d2 += d * d;
    e2 += exact[i]! * exact[i]!;
    dMax = Math.max(dMax, Math.abs(d));
    eMax = Math.max(eMax, Math.abs(exact[i]!));
  }
  return { relL2: Math.sqrt(d2 / e2), relMax: dMax / eMax };
}

const fmt = (x: number) => x.toExponential(2);
console.log(`native kernels: ${ringKernelsStatus()}; ${L} gradient values, ${P} gradients of 1 x ${T} tokens`);
if (parts.has('one-step')) console.log('| N | codec | rel. L2 error | max error / max |exact| |\n|---|---|---|---|');
for (const n of parts.has('one-step') ? [2, 4] : []) {
  const exact = new Float64Array(L);
  for (let r = 0; r < n; r++) { const g = pool[r % P]!; for (let i = 0; i < L; i++) exact[i] += g[i]!; }
  for (const codec of ['fp32', 'bf16', 'fp16'] as const) {
    const bufs = Array.from({ length: n }, (_, r) => pool[r % P]!.slice());
    await allReduce(bufs, codec);
    const e = errors(bufs[0]!, exact);
    console.log(`| ${n} | ${codec} | ${fmt(e.relL2)} | ${fmt(e.relMax)} |`);
  }
}

if (!parts.has('steps')) process.exit(0);
console.log(`\nSum of ${K} steps' all-reduced gradients vs the exact sum, N = 2:`);
console.log('| codec | rel. L2 error of the sum | max error / max |exact| |');
console.log('|---|---|---|');
const n = 2;
const exactSum = new Float64Array(L);
for (let t = 0; t < K; t++) for (let r = 0; r < n; r++) { const g = pool[(t * n + r) % P]!; for (let i = 0; i < L; i++) exactSum[i] += g[i]!; }
for (const [label, codec, ef] of [['bf16', 'bf16', false], ['fp16', 'fp16', false], ['fp16 + error feedback', 'fp16', true]] as const) {
  const applied = new Float64Array(L);
  const efs = ef ? Array.from({ length: n }, () => new ErrorFeedback(L)) : undefined;
  for (let t = 0; t < K; t++) {
    const bufs = Array.from({ length: n }, (_, r) => pool[(t * n + r) % P]!.slice());
    await allReduce(bufs, codec, efs, t + 1);
    const b = bufs[0]!;
    for (let i = 0; i < L; i++) applied[i] += b[i]!;
  }
  const e = errors(applied, exactSum);
  console.log(`| ${label} | ${fmt(e.relL2)} | ${fmt(e.relMax)} |`);
}
