/**
 * Distributed evaluation with eval.max_batches scores exactly the single-process examples: the ranks'
 * states (rankEvalState), merged, give the single-process token count and loss for world sizes 1-3
 * and limits below, at and past the eval set. Cutting each rank's shard to max_batches / world batches
 * instead (the old way) scores other examples: the test tells the two apart.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { LmExample } from '../../src/data/examples.ts';
import { evalResult, mergeEvalStates, type EvalState } from '../../src/eval/eval-state.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { BatchPlan } from '../../src/train/batch-plan.ts';
import { evalState } from '../../src/train/evaluate.ts';
import { prepareRun } from '../../src/train/prepare.ts';
import { rankEvalState } from '../../src/worker/step-loop.ts';
import { baseModel, job, ready, tempDir, writeLines } from '../train/fixtures.ts';

const ANIMALS = ['cat', 'dog', 'cow', 'owl', 'duck', 'bee', 'fox'];
/** Prompts and completions of different lengths, so which examples are scored changes the token count. */
const lines = (n: number) => [...Array(n)].map((_, i) =>
  JSON.stringify({ prompt: `the ${ANIMALS[i % 7]} says`, completion: ` ${'la '.repeat(1 + (i % 5))}said the ${ANIMALS[(i * 3) % 7]}.` }));

test('eval.max_batches: ranks merged = single process, world 1..3, limits 1, 2, 4 and past the set (13 examples, micro_batch 4)', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const modelDir = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lines(16));
  await writeLines(join(dir, 'eval.jsonl'), lines(13));
  const spec = (maxBatches: number, extra: Record<string, unknown> = {}) => job(dir, {
    model: modelDir, data: { train: 'train.jsonl', eval: 'eval.jsonl', format: 'prompt-completion' },
    training: { max_steps: 1, global_batch: 8, micro_batch: 4 }, eval: { max_batches: maxBatches, ...extra },
  });
  const run = await prepareRun(spec(1));
  const evalSet = run.data.eval;
  assert.equal(evalSet.length, 13);
  const { model } = await loadModel(modelDir, { task: 'causal-lm' });
  t.after(() => model.dispose());

  for (const maxBatches of [1, 2, 4, 9]) {
    const j = spec(maxBatches);
    const single = evalResult(await evalState(model, evalSet, 4, run.padId, maxBatches));
    // Independently: the loss tokens of the first max_batches x micro_batch examples (targets are tokens[1..]).
    const tokens = (evalSet.slice(0, maxBatches * 4) as LmExample[]).reduce((n, e) => n + e.lossMask.slice(1).reduce((a, b) => a + b, 0), 0);
    assert.equal(single.tokens, tokens);
    for (const world of [1, 2, 3]) {
      const states: EvalState[] = [];
      for (let rank = 0; rank < world; rank++) states.push(await rankEvalState(model, j, evalSet, run.padId, rank, world));
      const merged = evalResult(states.reduce(mergeEvalStates));
      assert.equal(merged.tokens, single.tokens, `max_batches ${maxBatches}, world ${world}: tokens`);
      assert.ok(Math.abs(merged.loss - single.loss) <= 1e-6 * single.loss, `max_batches ${maxBatches}, world ${world}: loss ${merged.loss} vs ${single.loss}`);
    }
  }

  // The old way, each rank ceil(max_batches / world) batches of its own shard, scores other examples.
  const old: EvalState[] = [];
  for (let rank = 0; rank < 2; rank++) old.push(await evalState(model, BatchPlan.shard(evalSet, rank, 2), 4, run.padId, 1));
  const single2 = evalResult(await evalState(model, evalSet, 4, run.padId, 2));
  assert.notEqual(evalResult(old.reduce(mergeEvalStates)).tokens, single2.tokens);
});

test('eval.max_batches with generation metrics: one rank equals the single process in every number', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const modelDir = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lines(16));
  await writeLines(join(dir, 'eval.jsonl'), lines(13));
  const j = job(dir, {
    model: modelDir, data: { train: 'train.jsonl', eval: 'eval.jsonl', format: 'prompt-completion' },
    training: { max_steps: 1, global_batch: 8, micro_batch: 4 },
    eval: { max_batches: 1, metrics: ['exact_match', 'bleu'], generate_max_tokens: 3, generate_max_examples: 6 },
  });
  const run = await prepareRun(j);
  const { model } = await loadModel(modelDir, { task: 'causal-lm' });
  t.after(() => model.dispose());
  // Scored: the first 4 examples; generated: the first 6 prompts, beyond the scored ones.
  const single = evalResult(await evalState(model, run.data.eval, 4, run.padId, 1, run.generation));
  const rank = evalResult(await rankEvalState(model, j, run.data.eval, run.padId, 0, 1, run.generation));
  assert.deepEqual(rank, single);
});
