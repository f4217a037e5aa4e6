/**
 * Optimizer state through the real checkpoint functions (checkpoint.ts saveCheckpoint / restoreOptimizer,
 * driven by `train`): for sgd (momentum, Nesterov, weight decay) and adam, N steps straight == an
 * interrupted run resumed from its checkpoint (same losses, bit-identical weights), with the state
 * saved as `<buffer>.<parameter>` and the kind in optimizer.safetensors' metadata; resuming with
 * another training.optimizer (or sgd without the checkpoint's momentum) is an error naming the file
 * and the field that leaves the checkpoints as they were; a checkpoint written before there was a
 * choice (no kind in its metadata) resumes as adamw.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { readSafetensors, writeSafetensors } from '../../src/model/safetensors.ts';
import { readModelWeights } from '../../src/model/weights-dir.ts';
import { latestCheckpoint } from '../../src/run/trainer-state.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

async function setupDir(t: Parameters<typeof tempDir>[0]) {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(24, 5));
  const spec = (output: string, training: Record<string, unknown>) => job(dir, {
    model, output, data: { train: 'train.jsonl', format: 'text', eval_fraction: 0, max_seq_len: 16 },
    training: { max_steps: 6, global_batch: 4, micro_batch: 2, lr: 3e-2, schedule: 'linear', ...training },
    checkpoint: { every_n_steps: 3, keep: 1 },
  });
  return { dir, spec };
}

/** Runs a job and interrupts it right after `steps` steps (as a crash would), leaving its checkpoint. */
async function trainUntil(spec: ReturnType<typeof job>, steps: number): Promise<void> {
  const stop = new Error('interrupted');
  await assert.rejects(train(spec, { ...quiet, onStep: (s) => { if (s === steps) throw stop; } }), (e) => e === stop);
}

async function weightBytes(dir: string): Promise<Map<string, Buffer>> {
  const w = await readModelWeights(dir);
  return new Map([...w.tensors].map(([n, t]) => [n, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

const trainLosses = (h: Awaited<ReturnType<typeof train>>['history']) => h.filter((x) => x.type === 'train').map((x) => [x.step, x.loss]);

for (const [label, training, buffers] of [
  ['sgd momentum 0.9 Nesterov, weight decay 0.1', { optimizer: 'sgd', momentum: 0.9, nesterov: true, weight_decay: 0.1 }, ['momentum_buffer']],
  ['adam, weight decay 0.1', { optimizer: 'adam', weight_decay: 0.1 }, ['m', 'v']],
] as const) {
  test(`${label}: 6 steps straight == 3 steps + checkpoint + resume (losses equal, weights bit-identical)`, async (t) => {
    const { spec } = await setupDir(t);
    const straight = await train(spec('straight', training), quiet);
    assert.equal(straight.steps, 6);
    const half = spec('resumed', training);
    await trainUntil(half, 3);
    const ckpt = (await latestCheckpoint(half.checkpoint.dir))!;
    const st = await readSafetensors(join(ckpt, 'optimizer.safetensors'));
    assert.deepEqual(st.metadata, { step: '3', optimizer: training.optimizer });
    assert.deepEqual([...new Set([...st.tensors.keys()].map((k) => k.slice(0, k.indexOf('.'))))].sort(), [...buffers]);
    assert.ok([...st.tensors.values()].some((x) => x.data.some((v) => v !== 0)), 'the saved state is not all zeros');

    const resumed = await train(half, { ...quiet, resume: true });
    assert.equal(resumed.steps, 6);
    assert.deepEqual(trainLosses(resumed.history), trainLosses(straight.history));
    const [a, b] = [await weightBytes(straight.finalModelDir), await weightBytes(resumed.finalModelDir)];
    assert.ok(a.size > 0);
    for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} bit-identical`);
  });
}

test('resuming with another training.optimizer, or sgd without the momentum buffer, names the file and the field and changes nothing', async (t) => {
  const { spec } = await setupDir(t);
  const sgd = { optimizer: 'sgd', momentum: 0.9 };
  await trainUntil(spec('out', sgd), 3);
  const ckptDir = spec('out', sgd).checkpoint.dir;
  const file = join((await latestCheckpoint(ckptDir))!, 'optimizer.safetensors');
  const before = [await readdir(ckptDir), await readFile(file)];
  await assert.rejects(train(spec('out', { optimizer: 'adam' }), { ...quiet, resume: true }), (e: Error) => {
    assert.ok(e instanceof InputError);
    assert.equal(e.message, `${file}: the checkpoint was trained with training.optimizer sgd, this job sets adam; resume with training.optimizer: sgd, or start a new run with --overwrite`);
    return true;
  });
  await assert.rejects(train(spec('out', { optimizer: 'sgd' }), { ...quiet, resume: true }), (e: Error) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, new RegExp(`^${file.replace(/[.]/g, '\\.')}: the checkpoint holds sgd state momentum_buffer, this job's sgd keeps none \\(a momentum_buffer only with training\\.momentum > 0\\)`));
    return true;
  });
  assert.deepEqual([await readdir(ckptDir), await readFile(file)], before);
});

test('a checkpoint from before training.optimizer (no kind in its metadata) resumes as adamw, bit-identically', async (t) => {
  const { spec } = await setupDir(t);
  const straight = await train(spec('straight', {}), quiet);
  const half = spec('resumed', {});
  await trainUntil(half, 3);
  // Rewrite optimizer.safetensors as the code before this change wrote it: m.<name>, v.<name>, metadata step only.
  const file = join((await latestCheckpoint(half.checkpoint.dir))!, 'optimizer.safetensors');
  const st = await readSafetensors(file);
  assert.equal(st.metadata.optimizer, 'adamw');
  await writeSafetensors(file, st.tensors, { metadata: { step: st.metadata.step } });
  assert.equal((await readSafetensors(file)).metadata.optimizer, undefined);
  await assert.rejects(train(spec('resumed', { optimizer: 'adam' }), { ...quiet, resume: true }), /training\.optimizer adamw, this job sets adam/);
  const resumed = await train(half, { ...quiet, resume: true });
  assert.deepEqual(trainLosses(resumed.history), trainLosses(straight.history));
  const [a, b] = [await weightBytes(straight.finalModelDir), await weightBytes(resumed.finalModelDir)];
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} bit-identical`);
});
