/**
 * RunRecord with a diverged run: a skipped step is marked and counted, a NaN evaluation reaches
 * metrics.jsonl and eval_report.json as "NaN" (never null, never 0 / perplexity 1), and the report's
 * charts leave non-finite points out.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileJob } from '../../src/config/compile.ts';
import { readHistoryFile } from '../../src/run/history.ts';
import { parseRecord } from '../../src/run/record-json.ts';
import { RunRecord } from '../../src/run/record.ts';

test('skipped non-finite steps are marked and counted; NaN evaluations are written as "NaN"', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-record-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = compileJob({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 4 }, output: 'out' }, join(dir, 'job.yaml'));
  const record = await RunRecord.open(job);
  await record.eval(0, { loss: 2, perplexity: Math.exp(2), tokens: 10 });
  await record.train({ step: 1, loss: 1.9, lr: 1e-3, grad_norm: 0.5, count: 8 });
  await record.train({ step: 2, loss: NaN, lr: 1e-3, grad_norm: NaN, count: 8 }); // skipped
  await record.train({ step: 3, loss: 1.8, lr: 1e-3, grad_norm: Infinity, count: 8 }); // skipped: the gradient overflowed
  await record.train({ step: 4, loss: NaN, lr: 1e-3, grad_norm: 0, count: 0 }); // no loss positions: nothing to skip
  await record.eval(4, { loss: NaN, perplexity: NaN, tokens: 10 });
  assert.equal(record.skippedNonFinite, 2);
  await record.finish({ steps: 4, stoppedEarly: false, data: { train: 32 }, finalModelDir: join(dir, 'out', 'final') });

  const lines = await readHistoryFile(join(job.outputDir, 'metrics.jsonl'));
  assert.deepEqual(lines.filter((h) => h.type === 'train').map((h) => h.skipped_nonfinite ?? 0), [0, 1, 1, 0]);
  const reportText = await readFile(join(job.outputDir, 'eval_report.json'), 'utf8');
  assert.ok(!reportText.includes('null'), reportText);
  const report = parseRecord(reportText, ['job', 'model', 'task', 'final_model']) as Record<string, any>;
  assert.equal(report.skipped_nonfinite_steps, 2);
  assert.ok(Number.isNaN(report.final_eval.loss) && Number.isNaN(report.final_eval.perplexity));
  assert.equal(report.base_eval.loss, 2);
  const html = await readFile(join(job.outputDir, 'report.html'), 'utf8');
  assert.ok(!/="NaN"|NaN,|,NaN/.test(html), 'no NaN coordinates in the charts');
});
