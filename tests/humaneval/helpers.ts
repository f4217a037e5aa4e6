/** Sample sets without a model: completions named after their model and prompt, blinded by blind(). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { blind, type Completion, type ModelEntry } from '../../src/humaneval/blind.ts';
import type { SampleKey } from '../../src/humaneval/key.ts';
import { DEFAULT_CRITERIA, DEFAULT_SCALE } from '../../src/humaneval/sheet-format.ts';

export const MODELS: ModelEntry[] = [
  { name: 'secret-base', model: '/models/hidden-base-dir', adapter: null },
  { name: 'secret-tuned', model: '/models/hidden-base-dir', adapter: '/runs/hidden-adapter-dir' },
];

/** Completion text of model m for prompt p: "completion <p> of <m>" is what the key must map back. */
export const textOf = (model: string, prompt: number) => `completion ${prompt} by ${model.replace('secret-', 'M-')}`;

export function makeKey(o: { seed?: number; prompts?: number; models?: ModelEntry[]; criteria?: string[] } = {}): SampleKey {
  const models = o.models ?? MODELS;
  const prompts = [...Array(o.prompts ?? 6).keys()].map((i) => ({ id: `p${i}`, text: `prompt number ${i}, "quoted", with a comma` }));
  const completions: Completion[] = models.flatMap((m) => prompts.map((_, p) => ({ model: m.name, prompt: p, completion: textOf(m.name, p), stoppedBy: 'max_tokens' })));
  return blind({
    seed: o.seed ?? 3, criteria: o.criteria ?? [...DEFAULT_CRITERIA], scale: DEFAULT_SCALE, generation: { max_new_tokens: 8 },
    models, prompts, completions,
  });
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-heval-'));
  if (!process.env.KEEP_TMP) t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
