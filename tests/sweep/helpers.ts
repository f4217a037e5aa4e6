/** A tiny GPT-2, the fixture grammar and a base job for `ringtune sweep` runs (real child processes). */
import { execFileSync, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { baseModel, lmLines, ready, tempDir, writeLines } from '../train/fixtures.ts';

export const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
export const sweepCli = (args: string[]) => spawnSync(process.execPath, [CLI, 'sweep', ...args], { encoding: 'utf8', timeout: 240_000 });
export const jsonLines = async (file: string) => (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));

/**
 * A folder with base-gpt2, 40 lines of the grammar, job.yaml (6 steps of 4, checkpoints every 3, 20% held out for
 * evaluation) and sweep.yaml (`base: job.yaml`, `output: sw` and the lines given).
 */
export async function setup(t: Parameters<typeof tempDir>[0], sweep: string[]): Promise<string> {
  await ready;
  const dir = await tempDir(t);
  await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), lmLines(40, 1));
  await writeFile(join(dir, 'job.yaml'), [
    'name: lm', 'model: base-gpt2', 'data: {train: train.jsonl, format: text, max_seq_len: 16, eval_fraction: 0.2}',
    'training: {max_steps: 6, global_batch: 4, micro_batch: 4, lr: 0.001}', 'checkpoint: {every_n_steps: 3}', 'output: out', '',
  ].join('\n'));
  await writeFile(join(dir, 'sweep.yaml'), ['base: job.yaml', 'output: sw', ...sweep, ''].join('\n'));
  return dir;
}

/** Waits until no process runs `needle` (the orphaned trial of a killed sweep exits by parent-watch). */
export async function waitGone(needle: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (!execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(needle)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`a process still runs ${needle}`);
}

