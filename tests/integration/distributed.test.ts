/**
 * Distributed runs with a real nats-server, real gRPC between separate worker processes:
 * - N workers == 1 worker with the same global batch (per-step losses and final parameters)
 * - every example is used exactly once per epoch across the ranks
 * Both from the same three runs (one 3-worker run fewer than a separate traced run).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { history, makeJob, runLocal, trainLosses } from './cluster-helpers.ts';

async function weights(dir: string): Promise<Float32Array[]> {
  return [...(await readModelWeights(dir)).tensors.values()].map((t) => t.data);
}

// One job shape for both tests. 88 lines, eval_fraction 0.125 -> 77 train examples; global batch 14 ->
// 6 steps per data epoch (5 x 14, then 7), so 24 steps are 4 whole epochs: the step across each epoch
// boundary, a short last batch, and uneven shares everywhere (3 workers: 5/5/4, last 3/2/2; 2 workers:
// 7/7, last 4/3), each accumulated in micro-batches of 2 with a remainder of 1.
const SHAPE = { maxSteps: 24, examples: 88, globalBatch: 14, microBatch: 2 };
const TRAIN_EXAMPLES = 77;
const EPOCHS = 4;

type Trace = { rank: number; step: number; epoch: number; examples: string[] };
let shared: Promise<{ dir: string; results: Map<number, { losses: number[]; params: Float32Array[] }>; trace: Trace[] }> | undefined;
after(async () => { if (shared) await rm((await shared).dir, { recursive: true, force: true }); });

/** The 1-, 2- and 3-worker runs of SHAPE, once for the file; the 3-worker run traces its examples. */
function runs() {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtune-dist-'));
    const results = new Map<number, { losses: number[]; params: Float32Array[] }>();
    const traceFile = join(dir, 'trace.jsonl');
    for (const workers of [1, 2, 3]) {
      // A 2 s heartbeat timeout on a run that lasts longer: heartbeats must flow during training, also
      // with one worker, where no ring I/O ever yields to the event loop.
      const job = await makeJob(dir, `eq${workers}`, { ...SHAPE, workers, heartbeatTimeoutMs: 2000 });
      const r = await runLocal(job, [], workers === 3 ? { RINGTUNE_TRACE_EXAMPLES: traceFile } : {});
      assert.equal(r.code, 0, r.output);
      const out = join(dir, `out-eq${workers}`);
      const h = await history(out);
      assert.ok(h.filter((x) => x.type === 'train').every((x) => x.workers === workers));
      results.set(workers, { losses: trainLosses(h), params: await weights(join(out, 'final')) });
    }
    const trace = (await readFile(traceFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Trace);
    return { dir, results, trace };
  })();
  return shared;
}

test('2 and 3 workers == 1 worker over 24 steps: per-step losses and final parameters within 1e-5', async () => {
  const { results } = await runs();
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

test('every example is used exactly once per epoch across 3 ranks (traced by source line)', async () => {
  // The 3-worker run above, traced: uneven shares and a short last batch in every epoch.
  const lines = (await runs()).trace;
  assert.deepEqual([...new Set(lines.map((l) => l.rank))].sort(), [0, 1, 2]);
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const used = lines.filter((l) => l.epoch === epoch).flatMap((l) => l.examples);
    assert.equal(used.length, TRAIN_EXAMPLES, `epoch ${epoch}`);
    assert.equal(new Set(used).size, TRAIN_EXAMPLES, `epoch ${epoch}: an example was used twice`);
  }
  assert.equal(Math.max(...lines.map((l) => l.epoch)), EPOCHS - 1);
  // Ranks never share an example within a step.
  for (const step of new Set(lines.map((l) => l.step))) {
    const inStep = lines.filter((l) => l.step === step).flatMap((l) => l.examples);
    assert.equal(new Set(inStep).size, inStep.length);
  }
});
