/**
 * Generation metrics during evaluation: completions generated from each prompt are scored with
 * BLEU / ROUGE / exact match; the numbers equal the src/eval metrics applied to the same pairs, and
 * states of two shards merge to the one-shard result.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ClsExample, LmExample } from '../../src/data/examples.ts';
import { bleuMetric, exactSumValue, rougeMetric, squadMetric, evaluate } from '../../src/eval/index.ts';
import type { ClassificationPrediction, LmPrediction, Prediction } from '../../src/eval/predictions.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { evalResult, mergeEvalStates, parseEvalState } from '../../src/eval/eval-state.ts';
import { evalState } from '../../src/train/evaluate.ts';
import { train } from '../../src/train/loop.ts';
import { prepareRun } from '../../src/train/prepare.ts';
import { baseModel, clsLines, job, quiet, ready, tempDir, writeLines } from './fixtures.ts';

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
  const lmLines: LmPrediction[] = [];
  const whole = evalResult(await evalState(m, exs, 4, run.padId, undefined, run.generation, (p) => lmLines.push(p as LmPrediction)));
  // The predictions carry the very completions and references that were scored.
  assert.deepEqual(lmLines.map((p) => [p.generated, p.reference]), pairs.map((p) => [p.hyp, p.ref]));
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

test('a prediction sink leaves the EvalState bit for bit as without one; its lines add up to the state', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await writeLines(join(dir, 'lm.jsonl'), lines(11));
  await writeLines(join(dir, 'cls.jsonl'), clsLines(13, 4));
  for (const [family, task, file, format] of [['gpt2', 'causal-lm', 'lm.jsonl', 'prompt-completion'], ['bert', 'classification', 'cls.jsonl', 'label']] as const) {
    const model = await baseModel(dir, family, task);
    const spec = job(dir, { model, data: { train: file, format, eval_fraction: 0 }, training: { max_steps: 1, global_batch: 4, micro_batch: 4 } });
    const run = await prepareRun(spec);
    const { model: m } = await loadModel(model, { task, labels: run.labels });
    const exs = run.data.train;
    const got: Prediction[] = [];
    const plain = await evalState(m, exs, 4, run.padId);
    const withSink = await evalState(m, exs, 4, run.padId, undefined, undefined, (p) => got.push(p));
    assert.deepEqual(withSink, plain, family);
    assert.deepEqual(got.map((p) => p.id), exs.map((e) => e.source), family);
    const sum = exactSumValue(plain.loss.nllSum);
    if (task === 'causal-lm') {
      const ls = got as LmPrediction[];
      assert.equal(ls.reduce((a, p) => a + p.tokens, 0), plain.loss.tokens);
      ls.forEach((p) => assert.equal(p.loss, p.nll_sum / p.tokens));
      const nll = ls.reduce((a, p) => a + p.nll_sum, 0);
      assert.ok(Math.abs(nll - sum) < 1e-5 * sum, `${nll} vs ${sum}`);
    } else {
      const cs = got as ClassificationPrediction[];
      const loss = cs.reduce((a, p) => a + p.loss, 0);
      assert.ok(Math.abs(loss - sum) < 1e-5 * sum, `${loss} vs ${sum}`);
      assert.deepEqual(cs.map((p) => p.label), (exs as ClsExample[]).map((e) => run.labels![e.label]));
    }
    m.dispose();
  }
});
