/**
 * The step's gradient is the global-batch mean however the batch is split: across micro-batches and
 * across simulated workers whose [grad sums, loss sum, count] buffers are summed (what the ring does).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collateLm } from '../../src/data/batch.ts';
import type { LmExample } from '../../src/data/examples.ts';
import { Model } from '../../src/model/model.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../src/optim/adamw.ts';
import { BatchPlan } from '../../src/train/batch-plan.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { trainStep } from '../../src/train/train-step.ts';
import { Rng } from '../../src/util/rng.ts';
import { tinyConfig } from '../model/helpers.ts';
import { ready } from './fixtures.ts';

function examples(n: number): LmExample[] {
  const rng = new Rng(8);
  return [...Array(n)].map((_, i) => {
    const len = 3 + rng.int(9);
    const tokens = [...Array(len)].map(() => rng.int(37));
    return { tokens, lossMask: tokens.map((_, t) => (t >= len / 3 ? 1 : 0)), source: `#${i}` };
  });
}

async function gradsOf(parts: LmExample[][][], seed = 3): Promise<{ grads: Float32Array; loss: number }> {
  // parts[w] = micro-batches of worker w; every worker starts from the same weights.
  const replicas = parts.map(() => {
    const model = Model.random(tinyConfig('gpt2'), 'causal-lm', seed);
    const flat = new FlatParams(model);
    return { model, flat, optimizer: new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask()) };
  });
  for (const r of replicas) await r.flat.readParams();
  const buffers = replicas.map((r) => r.flat.reduceBuffer);
  let arrived = 0;
  let release!: () => void;
  const allArrived = new Promise<void>((res) => (release = res));
  // In-process stand-in for the ring: sum every worker's buffer into all of them.
  const allReduce = async (buf: Float32Array) => {
    if (++arrived === buffers.length) {
      const sum = new Float32Array(buf.length);
      for (const b of buffers) for (let i = 0; i < b.length; i++) sum[i] += b[i];
      for (const b of buffers) b.set(sum);
      release();
    }
    await allArrived;
  };
  const reports = await Promise.all(replicas.map((r, w) =>
    trainStep({ ...r, gradClip: 0, allReduce: parts.length > 1 ? allReduce : undefined }, parts[w].map((mb) => collateLm(mb, 0)), 1e-3)));
  for (const r of reports) assert.equal(r.loss, reports[0].loss);
  const grads = Float32Array.from(replicas[0].flat.grads);
  for (const r of replicas) r.model.dispose();
  return { grads, loss: reports[0].loss };
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(a[i]));
  }
  return d / s;
}

test('mean gradient of one batch == k micro-batches == N simulated workers (uneven shares)', async () => {
  await ready;
  const exs = examples(10);
  const whole = await gradsOf([[exs]]);
  assert.ok(whole.grads.some((g) => Math.abs(g) > 1e-3));
  const micro = await gradsOf([BatchPlan.chunks(exs, 3)]);
  assert.ok(relDiff(whole.grads, micro.grads) < 1e-5, `micro ${relDiff(whole.grads, micro.grads)}`);
  assert.ok(Math.abs(whole.loss - micro.loss) < 1e-6 * whole.loss);
  for (const world of [2, 3]) {
    const parts = [...Array(world).keys()].map((r) => BatchPlan.chunks(BatchPlan.shard(exs, r, world), 2));
    const dist = await gradsOf(parts);
    assert.ok(relDiff(whole.grads, dist.grads) < 1e-5, `world ${world}: ${relDiff(whole.grads, dist.grads)}`);
    assert.ok(Math.abs(whole.loss - dist.loss) < 1e-6 * whole.loss);
  }
});

test('batch plan: every example exactly once per epoch, shards disjoint and complete, deterministic', () => {
  const plan = new BatchPlan(23, 5, 7, { epochs: 3 });
  assert.equal(plan.stepsPerEpoch, 5);
  assert.equal(plan.totalSteps, 15);
  for (let e = 0; e < 3; e++) {
    const seen = [...Array(5).keys()].flatMap((s) => plan.stepExamples(e * 5 + s));
    assert.deepEqual([...seen].sort((a, b) => a - b), [...Array(23).keys()]);
    for (let s = 0; s < 5; s++) {
      const all = plan.stepExamples(e * 5 + s);
      const shards = [0, 1, 2].map((r) => BatchPlan.shard(all, r, 3));
      assert.deepEqual(shards.flat(), all);
    }
  }
  assert.notDeepEqual(plan.order(0), plan.order(1));
  assert.deepEqual(new BatchPlan(23, 5, 7, { epochs: 3 }).stepExamples(12), plan.stepExamples(12));
});
