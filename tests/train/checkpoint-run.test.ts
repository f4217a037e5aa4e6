/**
 * Checkpoints belong to a run, end to end through `train`:
 * - an old run's 10 checkpoints (to step 100), then `--overwrite` with 3 steps and keep 2: `latest`
 *   names an existing checkpoint of the new run, the old ones are gone, and `--resume` works (the bug:
 *   pruning sorted every step dir, removed the new run's step-1..3 and left `latest` dangling)
 * - staging leftovers of a crash are removed when a run claims the directory
 * - the history of an interrupted run, resumed, holds every step once, even when metrics.jsonl lost
 *   steps the checkpoint covers (what a coordinator that died while its workers trained on leaves)
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readHistoryFile, encodeHistory } from '../../src/run/history.ts';
import { latestCheckpoint, readTrainerState, stepDirName } from '../../src/run/trainer-state.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

const stepDirs = async (dir: string) => (await readdir(dir)).filter((f) => f.startsWith('step-')).sort();

test('--overwrite over an older run with more steps: latest stays valid, pruning keeps the new run, resume works', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(16, 1));
  const spec = (maxSteps: number, every: number, keep: number) => job(dir, {
    model, output: 'out', data: { train: 'train.jsonl', format: 'text', eval_fraction: 0, max_seq_len: 16 },
    training: { max_steps: maxSteps, global_batch: 2, micro_batch: 2, lr: 1e-3 }, checkpoint: { every_n_steps: every, keep },
  });
  const old = spec(100, 10, 10);
  await train(old, quiet);
  const ckpt = old.checkpoint.dir;
  assert.equal((await stepDirs(ckpt)).length, 10);
  const oldRun = (await readTrainerState((await latestCheckpoint(ckpt))!)).runId;

  const fresh = spec(3, 1, 2);
  await assert.rejects(train(fresh, quiet), /already holds checkpoints: pass --resume .* or --overwrite .*; found latest, step-00000010, \.\.\., step-00000090, step-00000100$/);
  await train(fresh, { ...quiet, overwrite: true });
  assert.deepEqual(await stepDirs(ckpt), [stepDirName(2), stepDirName(3)]);
  const latest = (await latestCheckpoint(ckpt))!;
  assert.equal(latest, join(ckpt, stepDirName(3)));
  const state = await readTrainerState(latest);
  assert.notEqual(state.runId, oldRun);
  assert.equal((await readTrainerState(join(ckpt, stepDirName(2)))).runId, state.runId);

  const resumed = await train(fresh, { ...quiet, resume: true });
  assert.equal(resumed.steps, 3);
  assert.deepEqual(resumed.history.filter((h) => h.type === 'train').map((h) => h.step), [1, 2, 3]);
});

test('an interrupted run resumed: metrics.jsonl holds steps 1..N once, also when it lost steps the checkpoint covers', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(24, 2));
  const spec = job(dir, {
    model, output: 'out', data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.2, max_seq_len: 16 },
    training: { max_steps: 16, global_batch: 2, micro_batch: 2, lr: 1e-3 }, checkpoint: { every_n_steps: 5, keep: 1 }, eval: { every_n_steps: 4 },
  });
  const trainSteps = async () => (await readHistoryFile(join(spec.outputDir, 'metrics.jsonl'))).filter((h) => h.type === 'train').map((h) => h.step);
  const interruptAt = async (s: number, overwrite = false) => {
    const stop = new Error('interrupted');
    await assert.rejects(train(spec, { ...quiet, overwrite, onStep: (at) => { if (at === s) throw stop; } }), (e) => e === stop);
  };
  const all = [...Array(16).keys()].map((i) => i + 1);

  // Interrupted after step 7 (its checkpoint: 5; steps 6-7 run again).
  await interruptAt(7);
  assert.deepEqual(await trainSteps(), [1, 2, 3, 4, 5, 6, 7]);
  await writeFile(join(spec.checkpoint.dir, `.${stepDirName(10)}.tmp-4242-deadbeef`), 'half a checkpoint');
  await train(spec, { ...quiet, resume: true });
  assert.deepEqual(await trainSteps(), all);
  assert.deepEqual((await readdir(spec.checkpoint.dir)).filter((f) => f.startsWith('.')), [], 'staging leftovers removed');

  // A second run interrupted after step 12 (checkpoint 10), whose metrics.jsonl then loses everything
  // after step 3, as when the process writing it died while rank 0 trained on and checkpointed.
  await interruptAt(12, true);
  const file = join(spec.outputDir, 'metrics.jsonl');
  const before = await readHistoryFile(file);
  await writeFile(file, encodeHistory(before.filter((h) => h.step <= 3)));
  const resumed = await train(spec, { ...quiet, resume: true });
  const after = await readHistoryFile(file);
  assert.deepEqual(after.filter((h) => h.type === 'train').map((h) => h.step), all);
  // Steps 4-10 came from the checkpoint: the same numbers the interrupted run recorded.
  for (const s of [4, 7, 10]) {
    assert.deepEqual(after.find((h) => h.type === 'train' && h.step === s), before.find((h) => h.type === 'train' && h.step === s), `step ${s}`);
  }
  assert.deepEqual(resumed.history, after);
  assert.deepEqual(after.filter((h) => h.type === 'eval').map((h) => h.step), [0, 12, 16], 'evals lost with the file stay lost; later ones are recorded');
  assert.ok(!(await readFile(file, 'utf8')).includes('null'));
});
