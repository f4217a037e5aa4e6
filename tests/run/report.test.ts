/**
 * run/report.ts: a classifier's final evaluation reaches eval_report.json as a `classification`
 * block and report.html as tables (the confusion matrix with counts and labels on both axes), not a
 * JSON dump. Expected numbers worked out by hand for five examples over labels a, b, c:
 *   (true, predicted) = (a,a) (a,b) (b,b) (b,b) (c,a)
 *   confusion rows = true: a [1 1 0], b [0 2 0], c [1 0 0]
 *   a: tp 1, support 2, predicted 2 -> P 1/2, R 1/2, F1 2/4
 *   b: tp 2, support 2, predicted 3 -> P 2/3, R 1,   F1 4/5
 *   c: tp 0, support 1, predicted 0 -> 0, 0, 0;   accuracy 3/5
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { classificationReport } from '../../src/eval/classification-report.ts';
import { addClassification, emptyEvalState } from '../../src/eval/eval-state.ts';
import { RunRecord } from '../../src/run/record.ts';
import { runJob, tempDir } from './helpers.ts';

function block() {
  const state = emptyEvalState({ numClasses: 3 });
  for (const [t, p] of [[0, 0], [0, 1], [1, 1], [1, 1], [2, 0]]) addClassification(state, p, t);
  return classificationReport(state, { 0: 'a', 1: 'b', 2: 'c' })!;
}

test('classificationReport: the hand-worked numbers, keyed by label name', () => {
  const c = block();
  assert.deepEqual(c.labels, ['a', 'b', 'c']);
  assert.deepEqual(c.confusion_matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]]);
  assert.deepEqual(c.per_class.map((p) => [p.label, p.precision, p.recall, p.f1, p.support, p.predicted]),
    [['a', 1 / 2, 1 / 2, 2 / 4, 2, 2], ['b', 2 / 3, 1, 4 / 5, 2, 3], ['c', 0, 0, 0, 1, 0]]);
  assert.equal(c.accuracy, 3 / 5);
  assert.deepEqual(c.micro, { precision: 3 / 5, recall: 3 / 5, f1: 3 / 5 });
  assert.equal(c.macro.f1, (2 / 4 + 4 / 5 + 0) / 3);
  assert.equal(c.weighted.recall, (1 / 2 * 2 + 1 * 2 + 0 * 1) / 5);
  assert.equal(classificationReport(emptyEvalState(), ['a']), undefined, 'a causal-LM evaluation has no block');
});

test('finish: eval_report.json carries the last evaluation\'s block; report.html draws the matrix as a table', async (t) => {
  const dir = await tempDir(t);
  const record = await RunRecord.open(runJob(dir));
  await record.eval(10, { loss: 1, accuracy: 0.6 }, block());
  await record.finish({ steps: 10, stoppedEarly: false, data: { train: 5, eval: 5 }, finalModelDir: join(dir, 'out', 'final') });
  const json = JSON.parse(await readFile(join(dir, 'out', 'eval_report.json'), 'utf8'));
  assert.deepEqual(json.classification, JSON.parse(JSON.stringify(block())));
  assert.deepEqual(json.final_eval, { loss: 1, accuracy: 0.6 }, 'the flat numbers are unchanged');

  const html = await readFile(join(dir, 'out', 'report.html'), 'utf8');
  const cm = html.match(/<table class="cm"><caption>confusion matrix[\s\S]*?<\/table>/)![0];
  const rows = [...cm.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => [...m[1].matchAll(/<t[hd][^>]*>([^<]*)<\/t[hd]>/g)].map((c) => c[1]));
  assert.deepEqual(rows, [
    ['true &darr; predicted &rarr;', 'a', 'b', 'c', 'support'],
    ['a', '1', '1', '0', '2'],
    ['b', '0', '2', '0', '2'],
    ['c', '1', '0', '0', '1'],
    ['predicted', '2', '3', '0', '5'],
  ]);
  assert.doesNotMatch(html, /confusion_matrix/, 'not a JSON dump');
});
