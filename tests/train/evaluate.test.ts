/**
 * Generation metrics during evaluation: completions generated from each prompt are scored with
 * BLEU / ROUGE / exact match; the numbers equal the src/eval metrics applied to the same pairs, and
 * states of two shards merge to the one-shard result.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { LmExample } from '../../src/data/examples.ts';
import { bleuMetric, rougeMetric, squadMetric, evaluate } from '../../src/eval/index.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { evalResult, mergeEvalStates, parseEvalState } from '../../src/eval/eval-state.ts';
import { evalState } from '../../src/train/evaluate.ts';
import { train } from '../../src/train/loop.ts';
import { prepareRun } from '../../src/train/prepare.ts';
import { baseModel, job, quiet, ready, tempDir, writeLines } from './fixtures.ts';

const SOUNDS: Record<string, string> = { cat: 'meow', dog: 'woof', cow: 'moo', owl: 'hoot', duck: 'quack', bee: 'buzz' };

function lines(n: number): string[] {
  const animals = Object.keys(SOUNDS);
  return [...Array(n)].map((_, i) => JSON.stringify({ prompt: `the ${animals[i % 6]} says`, completion: ` ${SOUNDS[animals[i % 6]]} ${SOUNDS[animals[i % 6]]}, said the ${animals[i % 6]}.` }));
}

test('eval.metrics bleu/rouge/exact_match: trained model scores high, numbers match src/eval on the same pairs, shards merge', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lines(120));
  await writeLines(join(dir, 'eval.jsonl'), lines(12));
  const spec = job(dir, {
    model, data: { train: 'train.jsonl', eval: 'eval.jsonl', format: 'prompt-completion' },
    training: { max_steps: 80, global_batch: 12, lr: 3e-3 },
    eval: { metrics: ['bleu', 'rouge', 'exact_match'], generate_max_tokens: 16 },
  });
  const r = await train(spec, quiet);
  assert.ok(r.baseEval!.exact_match < 20, `untrained exact match ${r.baseEval!.exact_match}`);
  assert.ok(r.finalEval!.exact_match >= 80, `trained exact match ${r.finalEval!.exact_match}`);
  assert.ok(r.finalEval!.bleu > 50 && r.baseEval!.bleu < 5 && r.finalEval!.rouge1 > 0.8, JSON.stringify([r.baseEval, r.finalEval]));

  // Recompute independently: generate each completion ourselves and score with src/eval directly.
  const run = await prepareRun(spec);
  const { model: m } = await loadModel(r.finalModelDir);
  const pairs: Array<{ hyp: string; ref: string }> = [];
  for (const ex of run.data.eval as LmExample[]) {
    const first = ex.lossMask.indexOf(1);
    const g = await generate(m, ex.tokens.slice(0, first), { maxNewTokens: 16, stopIds: [run.tok.eosTokenId!] });
    pairs.push({ hyp: run.tok.decode(g.ids, { skipSpecialTokens: true }).trim(), ref: run.tok.decode(ex.tokens.slice(first), { skipSpecialTokens: true }).trim() });
  }
  const bleu = evaluate(bleuMetric(), pairs.map((p) => ({ hypothesis: p.hyp, references: [p.ref] }))).score;
  const rouge = evaluate(rougeMetric(), pairs.map((p) => ({ prediction: p.hyp, references: [p.ref] })));
  const em = evaluate(squadMetric(), pairs.map((p) => ({ prediction: p.hyp, answers: [p.ref] })));
  assert.equal(r.finalEval!.bleu, bleu);
  assert.equal(r.finalEval!.rouge1, rouge.rouge1.fmeasure);
  assert.equal(r.finalEval!.exact_match, em.exactMatch);

  // Two shards merged == one pass.
  const exs = run.data.eval;
  const whole = evalResult(await evalState(m, exs, 4, run.padId, undefined, run.generation));
  const a = await evalState(m, exs.slice(0, 5), 4, run.padId, undefined, run.generation);
  const b = await evalState(m, exs.slice(5), 4, run.padId, undefined, run.generation);
  const merged = evalResult(parseEvalState(JSON.stringify(mergeEvalStates(a, b)), 'test'));
  for (const k of ['bleu', 'rouge1', 'rougeL', 'exact_match', 'token_f1', 'tokens']) assert.equal(merged[k], whole[k], k);
  assert.ok(Math.abs(merged.loss - whole.loss) < 1e-6 * whole.loss); // float32 sums over differently padded batches
  m.dispose();
});

test('eval.metrics are validated against task and format', () => {
  assert.throws(() => job('/tmp', { model: 'm', data: { train: 't', format: 'text' }, training: { epochs: 1 }, eval: { metrics: ['bleu'] } }),
    /eval\.metrics: bleu need task causal-lm with format prompt-completion or messages/);
  assert.throws(() => job('/tmp', { model: 'm', data: { train: 't', format: 'text' }, training: { epochs: 1 }, eval: { metrics: ['blue'] } }),
    /eval\.metrics: unknown blue; valid: .*bleu/);
});
