/** Small generated datasets and model directories for training tests (nothing downloaded). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { compileJob, type CompiledJob } from '../../src/config/compile.ts';
import { initBackend } from '../../src/model/backend.ts';
import type { Family, Task } from '../../src/model/config.ts';
import { createModelDir } from '../../src/model/create.ts';
import { Rng } from '../../src/util/rng.ts';

export const ready = initBackend(undefined, () => {});
export const quiet = { log: () => {}, progress: false };

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-train-'));
  if (!process.env.KEEP_TMP) t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const ANIMALS = ['cat', 'dog', 'bird', 'fox', 'cow', 'owl'];
const VERBS = ['sat on', 'ran to', 'looked at', 'slept by'];
const PLACES = ['mat', 'log', 'hill', 'roof', 'bed', 'box'];

/** "the fox ran to the hill." — a tiny grammar a small model learns in a few dozen steps. */
export function lmLines(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const pick = (xs: string[]) => xs[rng.int(xs.length)];
  return [...Array(n)].map((_, i) => JSON.stringify({ id: i, text: `the ${pick(ANIMALS)} ${pick(VERBS)} the ${pick(PLACES)}.` }));
}

const POS = ['great', 'wonderful', 'lovely', 'excellent', 'happy', 'bright'];
const NEG = ['awful', 'terrible', 'boring', 'sad', 'bad', 'gloomy'];

/** Balanced two-class sentiment where the adjectives decide the label. */
export function clsLines(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return [...Array(n)].map((_, i) => {
    const pos = i % 2 === 0;
    const w = pos ? POS : NEG;
    return JSON.stringify({ id: i, text: `it was a ${w[rng.int(6)]} and ${w[rng.int(6)]} ${['day', 'film', 'trip'][rng.int(3)]}`, label: pos ? 'pos' : 'neg' });
  });
}

export async function writeLines(path: string, lines: string[]): Promise<string> {
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

export async function baseModel(dir: string, family: Family, task?: Task): Promise<string> {
  const out = join(dir, `base-${family}`);
  await createModelDir({ family, preset: 'tiny', out, task, seed: 1 });
  return out;
}

/** A compiled job from an object in YAML's shape; `dir` is where job.yaml would live. */
export function job(dir: string, spec: Record<string, unknown>): CompiledJob {
  return compileJob(spec, join(dir, 'job.yaml'));
}

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
/** Runs the ringtune CLI in a child process (as a user would). */
export const runCli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300_000 });

/**
 * `ringtune train` of a 6-step LoRA adapter (r 4, c_attn + c_fc) on `base` in `dir`; returns the
 * adapter directory (out/final). Asserts the run succeeded.
 */
export async function trainLoraAdapter(dir: string, base: string): Promise<string> {
  await writeLines(join(dir, 'train.jsonl'), lmLines(40, 1));
  await writeFile(join(dir, 'job.yaml'), [
    `model: ${basename(base)}`, 'method: lora', 'lora: {r: 4, alpha: 16, target_modules: [c_attn, c_fc]}', 'data: {train: train.jsonl, format: text, max_seq_len: 16}',
    'training: {max_steps: 6, global_batch: 8, micro_batch: 8, lr: 0.02}', 'output: out', '',
  ].join('\n'));
  const tr = runCli(['train', join(dir, 'job.yaml')]);
  assert.equal(tr.status, 0, tr.stderr);
  return join(dir, 'out', 'final');
}
