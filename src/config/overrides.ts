/**
 * Command-line overrides of a job spec: `--set key.path=value` (repeatable) and `--output DIR`.
 * They are applied to the parsed YAML before compileJob, so the one schema validates them and
 * unknown keys are refused as in the file. Each override remembers how it was typed, so a problem
 * with its key names the flag (`--set training.lr=abc: training.lr: expected number`), not only the key.
 *   --set values are YAML scalars or flow lists (`3e-4`, `true`, `[biases, norms]`), read as if written
 *   in the job file (relative paths resolve against its folder);
 *   --output is a path as typed on the command line: relative to the working directory.
 */
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../errors.ts';

export interface JobOverrides {
  /** `key.path=value` as typed, in order (a later one wins). */
  set?: readonly string[];
  /** --output DIR. */
  output?: string;
}

/** The job field (dotted) -> the command-line text that set it, for messages. */
export type Origins = ReadonlyMap<string, string>;

/** One `--set` argument, split and its value parsed; errors name the argument. */
export function parseSet(arg: string): { key: string[]; value: unknown } {
  const eq = arg.indexOf('=');
  const keyText = eq < 0 ? '' : arg.slice(0, eq).trim();
  const key = keyText.split('.');
  if (eq < 0 || key.some((k) => k === '')) {
    throw new InputError(`--set ${arg}: expected key.path=value, e.g. --set training.lr=3e-4`);
  }
  let value: unknown;
  try {
    value = parseYaml(arg.slice(eq + 1));
  } catch (err) {
    throw new InputError(`--set ${arg}: the value is not a YAML scalar or list (${(err as Error).message.split('\n')[0]})`);
  }
  // An empty value would become null, which the schema reports as a type error far from the cause.
  if (value === null) throw new InputError(`--set ${arg}: empty value; to use the default, leave the key out`);
  return { key, value };
}

/**
 * `raw` (the parsed YAML; not modified) with the overrides applied, and where each came from.
 * A key path may create missing sections; it may not descend into a value that is not a mapping.
 */
export function applyOverrides(raw: unknown, o: JobOverrides): { spec: unknown; origins: Map<string, string> } {
  const origins = new Map<string, string>();
  if (!o.set?.length && o.output === undefined) return { spec: raw, origins };
  const spec: Record<string, unknown> = raw && typeof raw === 'object' && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : {};
  for (const arg of o.set ?? []) {
    const { key, value } = parseSet(arg);
    let node = spec;
    for (const [i, k] of key.slice(0, -1).entries()) {
      const next = node[k] ?? (node[k] = {});
      if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        throw new InputError(`--set ${arg}: ${key.slice(0, i + 1).join('.')} is ${JSON.stringify(next)}, not a section with keys`);
      }
      node = next as Record<string, unknown>;
    }
    node[key[key.length - 1]] = value;
    origins.set(key.join('.'), `--set ${arg}`);
  }
  if (o.output !== undefined) {
    spec.output = resolve(o.output);
    origins.set('output', `--output ${o.output}`);
  }
  return { spec, origins };
}

/**
 * How the user typed the field at `path` (dotted), if a flag set it or a section containing it
 * (`--set data={...}` is not possible, but `--set cluster.nats.url=...` covers `cluster.nats.url`).
 */
export function originOf(origins: Origins | undefined, path: string): string | undefined {
  if (!origins) return undefined;
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const o = origins.get(p);
    if (o) return o;
  }
  return undefined;
}
