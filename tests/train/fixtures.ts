/** Small generated datasets and model directories for training tests (nothing downloaded). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
