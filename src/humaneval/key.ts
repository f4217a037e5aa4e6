/**
 * key.json: what `ringtune samples` generated and how it was blinded. The raters get the sheet
 * (ids only); whoever imports the ratings keeps the key, which maps each sample id to its model and
 * prompt (and keeps the completion, so a lost sheet can be rebuilt from it).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { InputError } from '../errors.ts';

export const KEY_FORMAT = 'ringtune-humaneval-key/1';

const Name = z.string().min(1);
export const KeySchema = z.object({
  format: z.literal(KEY_FORMAT),
  /** Random-looking prefix of every id of this sample set (a hash of its content), so a sheet of another set is rejected. */
  tag: z.string().regex(/^[0-9a-f]+$/),
  seed: z.number().int(),
  criteria: z.array(Name).min(1),
  scale: z.object({ min: z.number().int(), max: z.number().int() }).refine((s) => s.min < s.max, 'min must be below max'),
  generation: z.record(z.string(), z.unknown()),
  models: z.array(z.object({ name: Name, model: Name, adapter: z.string().nullable() })).min(1),
  prompts: z.array(z.object({ id: z.union([z.string(), z.number()]), text: z.string() })).min(1),
  /** In sheet order. */
  samples: z.array(z.object({
    id: Name,
    model: Name,
    /** Index into `prompts`. */
    prompt: z.number().int().nonnegative(),
    completion: z.string(),
    stopped_by: z.string(),
  })).min(1),
}).superRefine((k, ctx) => {
  const models = new Set(k.models.map((m) => m.name));
  const ids = new Set<string>();
  k.samples.forEach((s, i) => {
    if (!models.has(s.model)) ctx.addIssue({ code: 'custom', path: ['samples', i, 'model'], message: `"${s.model}" is not in models` });
    if (s.prompt >= k.prompts.length) ctx.addIssue({ code: 'custom', path: ['samples', i, 'prompt'], message: `no prompt ${s.prompt}` });
    if (ids.has(s.id)) ctx.addIssue({ code: 'custom', path: ['samples', i, 'id'], message: `id "${s.id}" repeats` });
    ids.add(s.id);
  });
});

export type SampleKey = z.infer<typeof KeySchema>;
export type KeySample = SampleKey['samples'][number];

export async function readKey(file: string): Promise<SampleKey> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`--key ${file}: cannot read it (${err.code ?? err.message}); it is the key.json \`ringtune samples\` wrote`);
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--key ${file}: not JSON (${(err as Error).message})`);
  }
  const parsed = KeySchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new InputError(`--key ${file}: not a key.json of \`ringtune samples\`:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
