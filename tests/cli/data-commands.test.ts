/**
 * `ringtune data prepare JOB` through the real command line: the first run builds the cache next to
 * the data and prints counts equal to the in-memory preparation's; the second reuses it; --force
 * rebuilds; a bad record names its file and line as training would.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadJobFile } from '../../src/config/compile.ts';
import { prepareData } from '../../src/data/dataset.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { baseModel, lmLines, ready, tempDir, writeLines } from '../train/fixtures.ts';

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
const { RINGTUNE_CACHE: _ignored, ...env } = process.env;
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env });

test('ringtune data prepare: builds beside the data with the in-memory counts, then reuses; --force rebuilds; bad records name file:line', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  const lines = lmLines(120, 5);
  lines.splice(7, 0, '{"text": ""}');
  await writeLines(join(dir, 'train.jsonl'), lines);
  const jobFile = join(dir, 'job.yaml');
  await writeFile(jobFile, `model: ${model}\ndata:\n  train: train.jsonl\n  format: text\n  max_seq_len: 12\n  packing: true\n  on_bad_record: skip\ntraining:\n  max_steps: 1\n`);

  const first = cli(['data', 'prepare', jobFile]);
  assert.equal(first.status, 0, first.stderr);
  const got = JSON.parse(first.stdout);
  const job = await loadJobFile(jobFile);
  const want = await prepareData(job, await Tokenizer.fromDir(model));
  assert.equal(got.built, true);
  assert.equal(got.cache.startsWith(join(dir, '.ringtune-cache') + '/'), true, got.cache);
  assert.equal(got.records, 121);
  assert.equal(got.skipped, 1);
  assert.equal(got.train_examples, want.train.length);
  assert.equal(got.eval_examples, want.eval.length);
  assert.equal(got.tokens, [...want.train, ...want.eval].reduce((n, e) => n + e.tokens.length, 0));
  assert.match(first.stderr, /prepare: 100%/);

  const second = JSON.parse(cli(['data', 'prepare', jobFile]).stdout);
  const counts = (o: Record<string, unknown>) => ['cache', 'records', 'tokens', 'truncated', 'skipped', 'train_examples', 'eval_examples'].map((k) => o[k]);
  assert.equal(second.built, false);
  assert.deepEqual(counts(second), counts(got));
  assert.equal(JSON.parse(cli(['data', 'prepare', jobFile, '--force', '--threads', '0']).stdout).built, true);

  const failing = cli(['data', 'prepare', jobFile, '--set', 'data.on_bad_record=fail']);
  assert.equal(failing.status, 1);
  assert.match(failing.stderr, new RegExp(`error: ${join(dir, 'train.jsonl').replace(/[/.]/g, '\\$&')}:8: field "text": is empty`));
});
