/**
 * The update does not depend on how a global batch is split, and a resumed run is the same run:
 * - k micro-batches (even and uneven splits) == one batch: same weights to 1e-6 after several steps,
 *   with variable-length examples, so per-token normalisation is what is being tested
 * - 2N steps straight == N steps, checkpoint, resume, N steps: same losses and bit-identical weights
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

/** Prompt-completion pairs of very different lengths: token counts differ per example. */
function pcLines(n: number): string[] {
  return [...Array(n)].map((_, i) => JSON.stringify({ prompt: `q${i}: ${'word '.repeat(i % 5)}`, completion: `the answer is ${'yes '.repeat(1 + (i % 4))}.` }));
}

async function weights(dir: string) {
  return (await readModelWeights(dir)).tensors;
}

test('gradient accumulation: micro-batches of 8, 2 and 3 give the same update as one batch of 8', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), pcLines(24));
  const run = async (micro: number) => {
    const spec = job(dir, {
      model, output: `out-${micro}`, data: { train: 'train.jsonl', format: 'prompt-completion', eval_fraction: 0 },
      // eps 1e-4 instead of 1e-8: GPT-2's key bias has an exactly-zero true gradient (softmax ignores a
      // per-query constant), so its float32 gradient is rounding noise that Adam with eps 1e-8 would
      // turn into +-lr steps of arbitrary sign. With 1e-4 the noise moves nothing; real gradients do.
      training: { max_steps: 3, global_batch: 8, micro_batch: micro, lr: 1e-2, grad_clip: 0, eps: 1e-4 },
    });
    const r = await train(spec, quiet);
    return { r, w: await weights(r.finalModelDir) };
  };
  const one = await run(8);
  for (const micro of [2, 3]) {
    const split = await run(micro);
    const losses = (h: typeof one.r.history) => h.filter((x) => x.type === 'train').map((x) => Number(x.loss));
    losses(split.r.history).forEach((l, i) => assert.ok(Math.abs(l - losses(one.r.history)[i]) < 1e-6 * Math.abs(l), `step ${i + 1} loss ${l} vs ${losses(one.r.history)[i]}`));
    let maxDiff = 0;
    let maxMove = 0;
    const base = await weights(model);
    for (const [name, a] of one.w) {
      const b = split.w.get(name)!.data;
      const w0 = base.get(name)!.data;
      for (let i = 0; i < a.data.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b[i]));
        maxMove = Math.max(maxMove, Math.abs(a.data[i] - w0[i]));
      }
    }
    assert.ok(maxMove > 1e-2, `training moved the weights by only ${maxMove}`);
    assert.ok(maxDiff < 1e-6, `micro ${micro}: max weight difference ${maxDiff}`);
  }
});

test('resume: 2N steps == N steps + checkpoint + resume N steps (losses equal, weights bit-identical)', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'llama');
  await writeLines(join(dir, 'train.jsonl'), lmLines(60, 4));
  const spec = (output: string, extra: Record<string, unknown> = {}) => job(dir, {
    model, output, data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.1 },
    training: { epochs: 2, global_batch: 8, micro_batch: 4, lr: 3e-3, warmup_steps: 2, schedule: 'cosine' },
    checkpoint: { every_n_steps: 7, keep: 1 }, ...extra,
  });
  const straight = await train(spec('straight'), quiet);
  assert.equal(straight.steps, 14); // 54 examples / 8 = 7 steps per epoch
  // The same job interrupted after step 7 (max_steps would change the schedule), then resumed.
  const half = spec('resumed');
  await trainUntil(half, 7);
  const resumed = await train(half, { ...quiet, resume: true });
  assert.equal(resumed.steps, 14);
  const trainLosses = (h: typeof straight.history) => h.filter((x) => x.type === 'train').map((x) => [x.step, x.loss]);
  assert.deepEqual(trainLosses(resumed.history), trainLosses(straight.history));
  const a = await weights(straight.finalModelDir);
  const b = await weights(resumed.finalModelDir);
  for (const [name, ta] of a) assert.deepEqual(Buffer.from(b.get(name)!.data.buffer), Buffer.from(ta.data.buffer), name);
  const history = (await readFile(join(half.outputDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(history.filter((h) => h.type === 'train').map((h) => h.step), [...Array(14).keys()].map((i) => i + 1));
});

/** Runs a job and interrupts it right after `steps` steps (as a crash would), leaving its checkpoint. */
async function trainUntil(spec: ReturnType<typeof job>, steps: number): Promise<void> {
  const stop = new Error('interrupted');
  await assert.rejects(train(spec, { ...quiet, onStep: (s) => { if (s === steps) throw stop; } }), (e) => e === stop);
}
