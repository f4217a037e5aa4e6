/**
 * `ringtune train` as a user runs it, in a child process: SIGTERM stops after the step in flight with
 * a checkpoint and exit 143; --resume says where it starts and keeps base_eval; a previous run's outputs
 * are never replaced silently; --output and --set change the job without another YAML.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { baseModel, lmLines, ready, tempDir, writeLines } from '../train/fixtures.ts';

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300_000 });
const lastJson = (stdout: string) => JSON.parse(stdout.slice(stdout.indexOf('{')));

async function setup(t: Parameters<typeof tempDir>[0]): Promise<string> {
  await ready;
  const dir = await tempDir(t);
  await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(80, 1));
  await writeFile(join(dir, 'job.yaml'), [
    'name: sig', 'model: base-gpt2', 'data: {train: train.jsonl, format: text, max_seq_len: 16}',
    'training: {max_steps: 400, global_batch: 4, micro_batch: 4, lr: 0.001}', 'checkpoint: {every_n_steps: 1000}', 'output: out', '',
  ].join('\n'));
  return dir;
}

test('SIGTERM finishes the step, checkpoints, says how to resume and exits 143; --resume names the step and keeps base_eval', async (t) => {
  const dir = await setup(t);
  const child = spawn(process.execPath, [CLI, 'train', join(dir, 'job.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (b) => { stdout += b; });
  const stderr: string[] = [];
  // The log has a line every 10 steps (no TTY): stop during the run, not before the first step.
  createInterface({ input: child.stderr }).on('line', (l) => {
    stderr.push(l);
    if (/\] step 20\/400/.test(l)) child.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const log = stderr.join('\n');
  assert.equal(code, 143, log);
  const m = /stopped by SIGTERM at step (\d+); checkpoint (\S+); resume with --resume/.exec(log);
  assert.ok(m, log);
  const step = Number(m[1]);
  assert.ok(step >= 20 && step < 400, `stopped at ${step}`);
  assert.equal(m[2], join(dir, 'out', 'checkpoints', `step-${String(step).padStart(8, '0')}`));
  assert.ok((await stat(join(m[2], 'trainer_state.json'))).isFile());
  assert.equal((await readFile(join(dir, 'out', 'checkpoints', 'latest'), 'utf8')).trim(), `step-${String(step).padStart(8, '0')}`);
  const stopped = lastJson(stdout);
  assert.equal(stopped.stopped_by, 'SIGTERM');
  assert.ok(stopped.base_eval?.loss > 0, stdout);
  assert.ok(!(await readdir(join(dir, 'out'))).includes('final'), 'an interrupted run writes no final model');

  // Continue with fewer remaining steps (max_steps is a job field, overridable like any other).
  const resumed = run(['train', join(dir, 'job.yaml'), '--resume', '--set', `training.max_steps=${step + 3}`]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming from step ${step} \\(checkpoint ${m[2].replace(/[.]/g, '\\.')}\\)`));
  const summary = lastJson(resumed.stdout);
  assert.equal(summary.steps, step + 3);
  assert.deepEqual(summary.base_eval, stopped.base_eval, 'the resumed summary keeps the step-0 evaluation');
  assert.ok(summary.final_eval.loss > 0);
});

test("a previous run's outputs are refused without --overwrite (also without checkpoints); --output and --set need no new YAML", async (t) => {
  const dir = await setup(t);
  const job = join(dir, 'job.yaml');
  const quick = ['--set', 'training.max_steps=2', '--set', 'checkpoint.every_n_steps=0'];
  const first = run(['train', job, ...quick]);
  assert.equal(first.status, 0, first.stderr);
  const finalBefore = await readFile(join(dir, 'out', 'final', 'model.safetensors'));

  const again = run(['train', job, ...quick]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, new RegExp(`error: ${join(dir, 'out')} already holds a previous run's outputs \\(eval_report\\.json, final, metrics\\.jsonl, report\\.html\\): pass --overwrite`));
  assert.doesNotMatch(again.stderr, /\n\s+at /);
  assert.deepEqual(await readFile(join(dir, 'out', 'final', 'model.safetensors')), finalBefore, 'nothing was replaced');

  // --output somewhere new (relative to the working directory, not the job file) trains without asking.
  const elsewhere = spawnSync(process.execPath, [CLI, 'train', job, ...quick, '--output', 'run-2'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  assert.equal(elsewhere.status, 0, elsewhere.stderr);
  assert.equal(lastJson(elsewhere.stdout).final_model, join(dir, 'run-2', 'final'));

  const over = run(['train', job, ...quick, '--set', 'training.max_steps=3', '--overwrite']);
  assert.equal(over.status, 0, over.stderr);
  assert.equal(lastJson(over.stdout).steps, 3);
  const lines = (await readFile(join(dir, 'out', 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.filter((l) => l.type === 'train').map((l) => l.step), [1, 2, 3], 'the old run\'s history is gone, not appended to');

  const bad = run(['train', job, '--set', 'training.lr=abc']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /job\.yaml: 1 problem in the job spec:\n {2}--set training\.lr=abc: training\.lr: .*expected number/);
});
