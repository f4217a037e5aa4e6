/**
 * Blinding: completions of every model for every prompt -> the order raters see them in and the ids
 * they see, with the key that undoes it.
 *   1. the prompts are shuffled (a rater's attention drifts over a long sheet: no prompt is always
 *      rated first), then within each prompt its completions (no model is always shown first);
 *   2. ids are <tag>-<position in the sheet>: they say nothing about the model, and the tag (a hash
 *      of the seed, the models, the prompts and the completions) differs between sample sets, so a
 *      sheet imported with another set's key has unknown ids instead of silently wrong ones.
 * Deterministic given the seed (util/rng.ts): the same inputs and seed give the same sheet.
 */
import { createHash } from 'node:crypto';
import { Rng } from '../util/rng.ts';
import { KEY_FORMAT, type SampleKey } from './key.ts';
import type { Scale } from './sheet-format.ts';

export interface ModelEntry { name: string; model: string; adapter: string | null }
export interface PromptEntry { id: string | number; text: string }
export interface Completion { model: string; prompt: number; completion: string; stoppedBy: string }

export interface BlindInput {
  seed: number;
  criteria: readonly string[];
  scale: Scale;
  generation: Record<string, unknown>;
  models: readonly ModelEntry[];
  prompts: readonly PromptEntry[];
  /** Every model's completion of every prompt, in any order. */
  completions: readonly Completion[];
}

export function blind(input: BlindInput): SampleKey {
  const rng = new Rng(input.seed);
  const promptOrder = rng.shuffle([...input.prompts.keys()]);
  const modelRank = new Map(input.models.map((m, i) => [m.name, i]));
  const ordered: Completion[] = [];
  for (const p of promptOrder) {
    // Start each prompt's group from a fixed order (the models' order) so the shuffle alone decides.
    const group = input.completions.filter((c) => c.prompt === p).sort((a, b) => modelRank.get(a.model)! - modelRank.get(b.model)!);
    ordered.push(...rng.shuffle(group));
  }
  const tag = createHash('sha256')
    .update(JSON.stringify([input.seed, input.models, input.prompts, ordered]))
    .digest('hex').slice(0, 6);
  const width = String(ordered.length).length;
  return {
    format: KEY_FORMAT, tag, seed: input.seed, criteria: [...input.criteria], scale: { ...input.scale },
    generation: input.generation, models: input.models.map((m) => ({ ...m })), prompts: input.prompts.map((p) => ({ ...p })),
    samples: ordered.map((c, i) => ({
      id: `${tag}-${String(i + 1).padStart(width, '0')}`, model: c.model, prompt: c.prompt, completion: c.completion, stopped_by: c.stoppedBy,
    })),
  };
}
