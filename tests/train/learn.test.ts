/** End to end on one process: a tiny model fine-tuned on generated data really learns. */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../src/model/model-dir.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, clsLines, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

test('causal LM (llama, text): eval loss falls well below its start; outputs are complete', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'llama');
  await writeLines(join(dir, 'train.jsonl'), lmLines(300, 1));
  const spec = job(dir, {
    model, data: { train: 'train.jsonl', format: 'text', eval_fraction: 0.1 },
    training: { epochs: 2, global_batch: 8, lr: 3e-3, warmup_steps: 5 }, eval: { every_n_steps: 20 },
  });
  const r = await train(spec, quiet);
  assert.ok(r.baseEval && r.finalEval);
  assert.ok(r.finalEval.loss < 0.35 * r.baseEval.loss, `eval loss ${r.baseEval.loss} -> ${r.finalEval.loss}`);
  assert.deepEqual((await readdir(spec.outputDir)).sort(), ['eval_report.json', 'final', 'metrics.jsonl', 'report.html']);
  const lines = (await readFile(join(spec.outputDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.filter((l) => l.type === 'train').length, r.steps);
  assert.ok(lines.filter((l) => l.type === 'eval').length >= 3);
  const report = JSON.parse(await readFile(join(spec.outputDir, 'eval_report.json'), 'utf8'));
  assert.equal(report.final_eval.loss, r.finalEval.loss);
  const html = await readFile(join(spec.outputDir, 'report.html'), 'utf8');
  assert.ok(html.includes('<svg') && html.includes('train loss') && html.includes('eval loss'));
  // The exported model loads back as a Hugging Face directory with its tokenizer.
  const { model: back } = await loadModel(r.finalModelDir);
  assert.equal(back.task, 'causal-lm');
  back.dispose();
});

for (const family of ['bert', 'gpt2'] as const) {
  test(`classification (${family}, label): a separable set reaches > 90% accuracy; labels are saved`, async (t) => {
    await ready;
    const dir = await tempDir(t);
    const model = await baseModel(dir, family, 'classification');
    await writeLines(join(dir, 'train.jsonl'), clsLines(240, 2));
    await writeLines(join(dir, 'eval.jsonl'), clsLines(60, 3));
    const spec = job(dir, {
      model, data: { train: 'train.jsonl', eval: 'eval.jsonl', format: 'label' },
      training: { epochs: 3, global_batch: 16, lr: 2e-3 },
    });
    const r = await train(spec, quiet);
    assert.ok(r.finalEval!.accuracy > 0.9, `accuracy ${r.finalEval!.accuracy}`);
    assert.ok(r.finalEval!.f1_macro > 0.9, `macro F1 ${r.finalEval!.f1_macro}`);
    const config = JSON.parse(await readFile(join(r.finalModelDir, 'config.json'), 'utf8'));
    assert.deepEqual(config.id2label, { 0: 'neg', 1: 'pos' });
    assert.deepEqual(config.label2id, { neg: 0, pos: 1 });
  });
}
