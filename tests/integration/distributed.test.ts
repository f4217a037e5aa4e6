/**
 * Distributed runs with a real nats-server, real gRPC between separate worker processes:
 * - N workers == 1 worker with the same global batch (per-step losses and final parameters)
 * - every example is used exactly once per epoch across the ranks
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { history, makeJob, runLocal, trainLosses } from './cluster-helpers.ts';

async function weights(dir: string): Promise<Float32Array[]> {
  return [...(await readModelWeights(dir)).tensors.values()].map((t) => t.data);
}

test('2 and 3 workers == 1 worker over 24 steps: per-step losses and final parameters within 1e-5', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-dist-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const results = new Map<number, { losses: number[]; params: Float32Array[] }>();
  for (const workers of [1, 2, 3]) {
    // A 2 s heartbeat timeout on a run that lasts longer: heartbeats must flow during training, also
    // with one worker, where no ring I/O ever yields to the event loop.
    const job = await makeJob(dir, `eq${workers}`, { workers, maxSteps: 24, globalBatch: 12, microBatch: 2, heartbeatTimeoutMs: 2000 });
    const r = await runLocal(job);
    assert.equal(r.code, 0, r.output);
    const out = join(dir, `out-eq${workers}`);
    const h = await history(out);
    assert.ok(h.filter((x) => x.type === 'train').every((x) => x.workers === workers));
    results.set(workers, { losses: trainLosses(h), params: await weights(join(out, 'final')) });
  }
  const one = results.get(1)!;
  assert.equal(one.losses.length, 24);
  assert.ok(one.losses[23] < 0.6 * one.losses[0], `training must make progress: ${one.losses[0]} -> ${one.losses[23]}`);
  for (const workers of [2, 3]) {
    const r = results.get(workers)!;
    r.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i]), `${workers} workers, step ${i + 1}: ${l} vs ${one.losses[i]}`));
    let diff = 0;
    let scale = 0;
    r.params.forEach((p, k) => p.forEach((x, i) => { diff = Math.max(diff, Math.abs(x - one.params[k][i])); scale = Math.max(scale, Math.abs(one.params[k][i])); }));
    assert.ok(diff / scale < 1e-5, `${workers} workers: max parameter difference ${diff} (scale ${scale})`);
  }
});

test('every example is used exactly once per epoch across 3 ranks (traced by source line)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-dist-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeJob(dir, 'once', { workers: 3, epochs: 2, examples: 50, globalBatch: 8, microBatch: 3 });
  const trace = join(dir, 'trace.jsonl');
  const r = await runLocal(job, [], { RINGTUNE_TRACE_EXAMPLES: trace });
  assert.equal(r.code, 0, r.output);
  const lines = (await readFile(trace, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { rank: number; step: number; epoch: number; examples: string[] });
  assert.deepEqual([...new Set(lines.map((l) => l.rank))].sort(), [0, 1, 2]);
  // 50 examples, eval_fraction 0.125 -> 6 held out, 44 train -> 6 steps per epoch (last batch 4).
  for (const epoch of [0, 1]) {
    const used = lines.filter((l) => l.epoch === epoch).flatMap((l) => l.examples);
    assert.equal(used.length, 44, `epoch ${epoch}`);
    assert.equal(new Set(used).size, 44, `epoch ${epoch}: an example was used twice`);
  }
  // Ranks never share an example within a step.
  for (const step of new Set(lines.map((l) => l.step))) {
    const inStep = lines.filter((l) => l.step === step).flatMap((l) => l.examples);
    assert.equal(new Set(inStep).size, inStep.length);
  }
});
