/**
 * SWEEP.yaml checks: every problem names the sweep file, the line and the field, before anything is
 * written; a trial's job is checked by the job schema, its problems led by the space field that set
 * the value. A trial's job.yaml, written in its own folder, resolves to the same model and data as
 * the base job.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadJobFile } from '../../src/config/compile.ts';
import { loadSweepFile } from '../../src/sweep/sweep-spec.ts';
import { checkTrials, trialJob, writeTrialJob } from '../../src/sweep/trial-job.ts';
import { tempDir } from '../train/fixtures.ts';

const BASE = ['name: base', 'model: models/base-gpt2', 'data: {train: data/train.jsonl, format: text}', 'training: {max_steps: 4}', 'output: out', ''].join('\n');

async function sweepDir(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'jobs', 'models', 'base-gpt2'), { recursive: true });
  await writeFile(join(dir, 'jobs', 'job.yaml'), BASE);
  return dir;
}

/** The message loadSweepFile + checkTrials throw for this sweep file text. */
async function problem(dir: string, text: string): Promise<string> {
  const file = join(dir, 'sweep.yaml');
  await writeFile(file, text);
  try {
    checkTrials(await loadSweepFile(file));
  } catch (err) {
    assert.equal((err as Error).name, 'SweepSpecError', (err as Error).stack);
    assert.deepEqual((await readdir(dir)).sort(), ['jobs', 'sweep.yaml'], 'nothing was written');
    return (err as Error).message;
  }
  assert.fail('no error');
}

test('bad sweep fields: each named with file:line, all at once', async (t) => {
  const dir = await sweepDir(t);
  const file = join(dir, 'sweep.yaml');
  const msg = await problem(dir, [
    'base: jobs/job.yaml', 'space:', '  training.lr: {log_uniform: [1e-5, 1e-3]}', '  training.optimizer: adamw', 'strategy: grid', 'mode: lowest', 'trails: 4', '',
  ].join('\n'));
  assert.match(msg, new RegExp(`^${file}: 2 problems in the sweep spec:\n`));
  assert.match(msg, new RegExp(`  ${file}:6: mode: Invalid option: expected one of "min"\\|"max"`));
  assert.match(msg, new RegExp(`  ${file}:1: \\(top level\\): Unrecognized key: "trails" \\(trails\\)`));

  const space = await problem(dir, ['base: jobs/job.yaml', 'space:', '  training.lr: {log_uniform: [1e-5, 1e-3]}', '  training.optimizer: adamw', ''].join('\n'));
  assert.match(space, new RegExp(`  ${file}:4: space\\.training\\.optimizer: expected a list of choices .* got "adamw"; a fixed value belongs in the base job`));
  assert.match(space, new RegExp(`  ${file}:3: space\\.training\\.lr: strategy grid runs the grid, which needs a list of values \\(or int_uniform\\); log_uniform is for strategy random`));

  const asha = await problem(dir, ['base: jobs/job.yaml', 'strategy: asha', 'trials: 3', 'max_steps: 8', 'space:', '  training.max_steps: [4, 8]', ''].join('\n'));
  assert.match(asha, new RegExp(`  ${file}:1: min_steps: strategy asha needs min_steps`));
  assert.match(asha, new RegExp(`  ${file}:6: space\\.training\\.max_steps: strategy asha sets each rung's training\\.max_steps itself`));

  const random = await problem(dir, ['base: jobs/job.yaml', 'strategy: random', 'min_steps: 2', 'space: {training.lr: [0.1, 0.2]}', ''].join('\n'));
  assert.match(random, new RegExp(`  ${file}:2: strategy: strategy random needs trials`));
  assert.match(random, new RegExp(`  ${file}:3: min_steps: only strategy asha uses min_steps \\(strategy is random\\)`));

  assert.match(await problem(dir, 'base: jobs/nope.yaml\nspace: {training.lr: [0.1]}\n'), new RegExp(`  ${file}:1: base: cannot read the job file ${join(dir, 'jobs', 'nope.yaml')}`));
  assert.match(await problem(dir, 'base: jobs/job.yaml\nspace: {training.lr: [0.1\n'), new RegExp(`^${file}:\\d: invalid YAML`));
});

test("a trial's job is checked by the job schema: the problem names the sweep line and the field that set the value", async (t) => {
  const dir = await sweepDir(t);
  const file = join(dir, 'sweep.yaml');
  const lr = await problem(dir, ['base: jobs/job.yaml', 'space:', '  training.lr: [0.001, 2]', '  training.optimizer: [adamw]', ''].join('\n'));
  assert.match(lr, new RegExp(`^${file}: trial-0002 \\(training\\.lr=2 training\\.optimizer="adamw"\\) is not a valid job \\(base ${join(dir, 'jobs', 'job.yaml')}\\):\n` +
    `  ${file}:3 space\\.training\\.lr=2: training\\.lr: Too big: expected number to be <=1`));
  const typo = await problem(dir, ['base: jobs/job.yaml', 'space:', '  training.lrr: [0.001]', ''].join('\n'));
  assert.match(typo, new RegExp(`  ${file}:3 space\\.training\\.lrr=0\\.001: training: Unrecognized key: "lrr"`));
  const section = await problem(dir, ['base: jobs/job.yaml', 'space:', '  training.lr.peak: [0.001]', ''].join('\n'));
  assert.match(section, new RegExp(`  ${file}:3 space\\.training\\.lr\\.peak=0\\.001: training\\.lr: Invalid input: expected number, received object`));
  await writeFile(join(dir, 'jobs', 'job.yaml'), BASE.replace('max_steps: 4', 'max_steps: 4, lr: 0.1'));
  const scalar = await problem(dir, ['base: jobs/job.yaml', 'space:', '  training.lr.peak: [0.001]', ''].join('\n'));
  assert.match(scalar, new RegExp(`${file}:3 space\\.training\\.lr\\.peak: training\\.lr is 0\\.1 in the base job, not a section with keys`));
  await writeFile(join(dir, 'jobs', 'job.yaml'), BASE);
  const metric = await problem(dir, ['base: jobs/job.yaml', 'metric: accuracy', 'space: {training.lr: [0.001]}', ''].join('\n'));
  assert.match(metric, /metric "accuracy" is not reported by a causal-lm job; its evaluation reports loss, perplexity/);
  await writeFile(join(dir, 'jobs', 'job.yaml'), BASE.replace('format: text}', 'format: text, eval_fraction: 0}'));
  assert.match(await problem(dir, 'base: jobs/job.yaml\nspace: {training.lr: [0.001]}\n'), /ranks trials by their evaluation; the base job .* has no data\.eval and data\.eval_fraction 0/);
});

test("a trial's job.yaml lives in its own folder and resolves to the base job's model and data; output and name are the trial's", async (t) => {
  const dir = await sweepDir(t);
  const file = join(dir, 'sweep.yaml');
  await writeFile(file, ['base: jobs/job.yaml', 'output: runs/lr', 'strategy: asha', 'min_steps: 4', 'max_steps: 10', 'reduction_factor: 2',
    'space: {training.lr: [0.001, 0.01], data.eval: [data/eval.jsonl]}', ''].join('\n'));
  const sweep = await loadSweepFile(file);
  assert.equal(sweep.outputDir, join(dir, 'runs', 'lr'));
  assert.deepEqual(sweep.asha?.rungs, [4, 8, 10]);
  const base = await loadJobFile(join(dir, 'jobs', 'job.yaml'));
  const { spec, job } = trialJob(sweep, 'trial-0002', sweep.configs[1], 8);
  const trialDir = join(sweep.outputDir, 'trial-0002');
  const fromFile = await loadJobFile(await writeTrialJob(trialDir, spec));
  for (const j of [job, fromFile]) {
    assert.equal(j.modelDir, base.modelDir);
    assert.equal(j.data.trainPath, base.data.trainPath);
    assert.equal(j.data.evalPath, join(dir, 'jobs', 'data', 'eval.jsonl'), "a path in the space resolves as the base job's paths do");
    assert.equal(j.outputDir, trialDir);
    assert.equal(j.checkpoint.dir, join(trialDir, 'checkpoints'));
    assert.equal(j.name, 'base-trial-0002');
    assert.equal(j.training.peakLr, 0.01);
    assert.equal(j.training.maxSteps, 8);
    assert.equal(j.checkpoint.everyNSteps, 2, 'a checkpoint on every rung boundary (4, 8, 10)');
  }
});
