/**
 * `ringtune samples --models SPEC... [--adapter NAME=DIR]...`: which models to compare and what the
 * ratings call them.
 *   SPEC   DIR or NAME=DIR; DIR as `generate --model` takes it (a model directory, a hub id, or an
 *          adapter directory whose base_model_name_or_path is local). Without NAME= the model is
 *          called by DIR as typed.
 *   --adapter NAME=DIR   applies a LoRA adapter to the model named NAME, as `generate --adapter`.
 * The same DIR may appear twice under two names, e.g. base vs fine-tuned adapter on one base:
 *   --models base=models/base tuned=models/base --adapter tuned=runs/lora/final
 * NAME: letters, digits, _ . - (it is a table row and a key in ratings.json).
 */
import { InputError } from '../errors.ts';
import type { ModelEntry } from './blind.ts';

const NAMED = /^([A-Za-z0-9_.-]+)=(.+)$/;

export function parseModelSpecs(models: readonly string[], adapters: readonly string[] = []): ModelEntry[] {
  if (models.length === 0) throw new InputError('--models: give at least one model directory (DIR or NAME=DIR)');
  const entries: ModelEntry[] = models.map((spec) => {
    const m = NAMED.exec(spec);
    return m ? { name: m[1], model: m[2], adapter: null } : { name: spec, model: spec, adapter: null };
  });
  const names = entries.map((e) => e.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) {
    throw new InputError(`--models: two models are called "${dup}"; name them, e.g. --models base=${entries[0].model} tuned=${entries[0].model} --adapter tuned=ADAPTER_DIR`);
  }
  for (const a of adapters) {
    const m = NAMED.exec(a);
    if (!m) throw new InputError(`--adapter ${a}: expected NAME=DIR, NAME being one of the --models names (${names.join(', ')})`);
    const entry = entries.find((e) => e.name === m[1]);
    if (!entry) throw new InputError(`--adapter ${a}: no model called "${m[1]}" in --models (${names.join(', ')}); name it there with ${m[1]}=DIR`);
    if (entry.adapter !== null) throw new InputError(`--adapter ${a}: model "${m[1]}" has an adapter already (${entry.adapter})`);
    entry.adapter = m[2];
  }
  return entries;
}
