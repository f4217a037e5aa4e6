/** Early stopping: the stopper's rule by hand, and a run that stops when eval loss stops improving. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { EarlyStopper } from '../../src/run/early-stopping.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

test('EarlyStopper: min for loss, max otherwise; min_delta; patience counts evaluations without improvement', () => {
  const s = new EarlyStopper({ metric: 'loss', patience: 2, minDelta: 0.1 });
  assert.equal(s.mode, 'min');
  assert.equal(s.update({ loss: 3 }), false); // best 3
  assert.equal(s.update({ loss: 2.95 }), false); // not better by 0.1: bad 1
  assert.equal(s.update({ loss: 2.5 }), false); // best 2.5, bad 0
  assert.equal(s.update({ loss: 2.45 }), false); // bad 1
  assert.equal(s.update({ loss: 2.6 }), true); // bad 2 = patience
  assert.deepEqual(s.state(), { best: 2.5, badEvals: 2 });
  const acc = new EarlyStopper({ metric: 'accuracy', patience: 1, minDelta: 0 }, { best: 0.8, badEvals: 0 });
  assert.equal(acc.mode, 'max');
  assert.equal(acc.update({ accuracy: 0.9 }), false);
  assert.equal(acc.update({ accuracy: 0.9 }), true);
  assert.throws(() => acc.update({ loss: 1 }), /early_stopping\.metric "accuracy" is not computed; available: loss/);
});

test('a run with early stopping ends before its planned steps when eval loss stops improving', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(200, 1));
  // min_delta far above any possible gain: every eval after the first counts as "no improvement".
  const r = await train(job(dir, {
    model, data: { train: 'train.jsonl', format: 'text' },
    training: { max_steps: 40, global_batch: 8, lr: 1e-3 },
    eval: { every_n_steps: 5, early_stopping: { metric: 'loss', patience: 2, min_delta: 100 } },
  }), quiet);
  assert.equal(r.stoppedEarly, true);
  assert.equal(r.steps, 15); // evals at 5 (best), 10 (bad 1), 15 (bad 2 -> stop)
  assert.equal(r.history.filter((h) => h.type === 'eval').length, 4); // step 0, 5, 10, 15
});
