/**
 * run/record.ts: what both recipes keep about a run. Early stopping counts only evaluations strictly
 * inside the run and continues from a checkpoint's state; a resumed record keeps its history up to
 * the checkpoint; finish writes eval_report.json (base and final evaluation) and report.html.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { RunRecord } from '../../src/run/record.ts';
import { trainerState } from '../../src/run/trainer-state.ts';
import { readHistory, runJob, tempDir } from './helpers.ts';

const SCHEDULE = { name: 'cosine', peakLr: 1e-3, warmupSteps: 0, totalSteps: 10, minLrRatio: 0.1 };
const resumedAt = (step: number, earlyStopping?: { best: number; badEvals: number }) =>
  trainerState(step, 5, { runId: 'run-a', seed: 0, schedule: SCHEDULE, earlyStopping });

test('shouldStop: the base (step 0) and final (step = total) evaluations decide nothing and leave the state alone', async (t) => {
  const job = runJob(await tempDir(t), { eval: { early_stopping: { metric: 'loss', patience: 1 } } });
  const r = await RunRecord.open(job);
  assert.deepEqual(r.earlyStopping(), { best: Infinity, badEvals: 0 });
  assert.equal(r.shouldStop(0, { loss: 3 }, 10), false);
  assert.equal(r.shouldStop(10, { loss: 9 }, 10), false);
  assert.equal(r.shouldStop(12, { loss: 9 }, 10), false);
  assert.deepEqual(r.earlyStopping(), { best: Infinity, badEvals: 0 }); // none of them was counted
  assert.equal(r.shouldStop(4, { loss: 2 }, 10), false); // best 2
  assert.deepEqual(r.earlyStopping(), { best: 2, badEvals: 0 });
  assert.equal(r.shouldStop(8, { loss: 2.5 }, 10), true); // worse, patience 1
  assert.deepEqual(r.earlyStopping(), { best: 2, badEvals: 1 });
  assert.throws(() => r.shouldStop(9, { accuracy: 1 }, 10), (err: Error) => err instanceof InputError && /"loss" is not computed; available: accuracy/.test(err.message));
});

test('shouldStop without early stopping: never, and no state to checkpoint', async (t) => {
  const r = await RunRecord.open(runJob(await tempDir(t)));
  assert.equal(r.shouldStop(5, { loss: 1e9 }, 10), false);
  assert.equal(r.earlyStopping(), undefined);
});

test('earlyStopping() continues from the checkpoint: one more bad evaluation reaches patience 2', async (t) => {
  const dir = await tempDir(t);
  const job = runJob(dir, { eval: { early_stopping: { metric: 'loss', patience: 2, min_delta: 0.1 } } });
  const resumed = await RunRecord.open(job, resumedAt(5, { best: 1.5, badEvals: 1 }));
  assert.deepEqual(resumed.earlyStopping(), { best: 1.5, badEvals: 1 });
  assert.equal(resumed.shouldStop(6, { loss: 1.45 }, 10), true); // not better by min_delta: bad 2
  // The same evaluation in a fresh run is an improvement, not a stop: the restored state decided it.
  const fresh = await RunRecord.open(runJob(join(dir, 'other'), { eval: { early_stopping: { metric: 'loss', patience: 2, min_delta: 0.1 } } }));
  assert.equal(fresh.shouldStop(6, { loss: 1.45 }, 10), false);
});

test('a resumed record keeps the history up to the checkpoint and appends after it', async (t) => {
  const dir = await tempDir(t);
  const job = runJob(dir);
  const first = await RunRecord.open(job);
  await first.eval(0, { loss: 3, perplexity: Math.exp(3), tokens: 12 });
  for (const step of [1, 2, 3]) await first.train({ step, loss: 3 - step / 10, grad_norm: 1, count: 1 });
  await first.eval(2, { loss: 2.8, perplexity: Math.exp(2.8), tokens: 12 }); // lines need not be step-sorted
  const again = await RunRecord.open(job, resumedAt(2));
  assert.deepEqual(again.history.lines.map((l) => `${l.type}@${l.step}`), ['eval@0', 'train@1', 'train@2', 'eval@2']);
  await again.train({ step: 3, loss: 2.71, grad_norm: 1, count: 1 });
  assert.deepEqual((await readHistory(job.outputDir)).map((l) => `${l.type}@${l.step}:${l.loss}`), ['eval@0:3', 'train@1:2.9', 'train@2:2.8', 'eval@2:2.8', 'train@3:2.71']);
});

test('finish: eval_report.json with base (step 0) and final (latest) evaluation, and an HTML report with curves', async (t) => {
  const dir = await tempDir(t);
  const job = runJob(dir);
  const r = await RunRecord.open(job);
  const base = { loss: 3, perplexity: Math.exp(3), tokens: 12 };
  const mid = { loss: 2.5, perplexity: Math.exp(2.5), tokens: 12 };
  const final = { loss: 2.25, perplexity: Math.exp(2.25), tokens: 12 };
  await r.eval(0, base);
  for (const step of [1, 2, 3, 4]) await r.train({ step, loss: 3 - step / 8, lr: 1e-3, grad_norm: 1, count: 1 });
  await r.eval(2, mid);
  await r.eval(4, final);
  assert.equal(r.baseEval, base);
  assert.equal(r.lastEval, final);
  const returned = await r.finish({ steps: 4, stoppedEarly: false, data: { train: 40, eval: 6 }, finalModelDir: '/somewhere/final', extra: { run_id: 'abc', workers: 2 } });
  assert.deepEqual(returned, final);

  const report = JSON.parse(await readFile(join(job.outputDir, 'eval_report.json'), 'utf8'));
  assert.deepEqual(Object.keys(report), ['job', 'run_id', 'workers', 'model', 'task', 'steps', 'stopped_early', 'skipped_nonfinite_steps', 'data', 'base_eval', 'final_eval', 'seconds', 'final_model']);
  assert.deepEqual({ ...report, seconds: 0 }, {
    job: 'unit', run_id: 'abc', workers: 2, model: join(dir, 'model'), task: 'causal-lm', steps: 4, stopped_early: false, skipped_nonfinite_steps: 0,
    data: { train: 40, eval: 6 }, base_eval: base, final_eval: final, seconds: 0, final_model: '/somewhere/final',
  });
  assert.ok(report.seconds >= 0);
  const html = await readFile(join(job.outputDir, 'report.html'), 'utf8');
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script/); // opens offline, no scripts
  for (const name of ['train loss', 'eval loss', 'eval perplexity', '>lr<']) assert.ok(html.includes(name), name);
  // The train-loss curve has one vertex per train line: M + 3 L.
  const path = html.match(/<path d="(M[^"]*)" fill="none" stroke="#1f77b4"/);
  assert.ok(path);
  assert.equal(path[1].split(' ').length, 4);
});

test('finish after a resume reports the base evaluation kept in metrics.jsonl', async (t) => {
  const dir = await tempDir(t);
  const job = runJob(dir);
  const base = { loss: 3, perplexity: Math.exp(3), tokens: 12 };
  await writeFile(join((await RunRecord.open(job)).history.file), JSON.stringify({ type: 'eval', step: 0, ...base }) + '\n');
  const r = await RunRecord.open(job, resumedAt(5));
  await r.eval(10, { loss: 2, perplexity: Math.exp(2), tokens: 12 });
  await r.finish({ steps: 10, stoppedEarly: false, data: {}, finalModelDir: 'final' });
  const report = JSON.parse(await readFile(join(job.outputDir, 'eval_report.json'), 'utf8'));
  assert.deepEqual(report.base_eval, base);
});
