/**
 * A rank training from the prepared-dataset cache reads its share of each global batch and nothing
 * else: every example it asks the cached split for is in BatchPlan.shard(stepExamples(s), rank, world)
 * of a step it ran, and it asks for each of those once per step. The examples it gets are the ones the
 * in-memory preparation gives at those indices.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareData, type Example, type ExampleSource } from '../../src/data/dataset.ts';
import { BatchPlan } from '../../src/train/batch-plan.ts';
import { prepareCachedRun } from '../../src/train/prepare.ts';
import { setupTraining } from '../../src/train/setup.ts';
import { runPlannedSteps } from '../../src/train/step-runner.ts';
import { baseModel, job, lmLines, ready, tempDir, writeLines } from './fixtures.ts';

test('rank 1 of 3 reads from the cache exactly its shard of each step, and gets the in-memory examples', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(61, 4));
  const j = job(dir, { model, data: { train: 'train.jsonl', format: 'text', max_seq_len: 16, eval_fraction: 0.1 }, training: { max_steps: 5, global_batch: 9, micro_batch: 3, seed: 2 } });
  const run = await prepareCachedRun(j);
  const want = await prepareData(j, run.tok);
  const setup = await setupTraining(j, run.data);
  t.after(() => setup.model.dispose());

  const asked: Array<{ i: number; ex: Example }> = [];
  const spy: ExampleSource<Example> = {
    length: run.data.train.length,
    at: (i) => {
      const ex = run.data.train.at(i)!;
      asked.push({ i, ex });
      return ex;
    },
    slice: () => assert.fail('a trainer must not read the whole split'),
  };
  const rank = 1;
  const world = 3;
  await runPlannedSteps(j, setup, spy, run.padId, 0, {
    shard: (indices) => BatchPlan.shard(indices, rank, world),
    // The other ranks' contributions are zeros here: this test is about reads, not the update.
    allReduce: async () => undefined,
    onStep: async () => undefined,
    evaluate: async () => false,
  });
  const expected = [...Array(5).keys()].flatMap((s) => BatchPlan.shard(setup.plan.stepExamples(s), rank, world));
  assert.equal(expected.length, 5 * 3);
  assert.deepEqual(asked.map((a) => a.i), expected);
  for (const a of asked) assert.deepEqual(a.ex, want.train[a.i], `example ${a.i}`);
});
