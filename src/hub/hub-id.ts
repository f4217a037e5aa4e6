/**
 * What `--model` / `model:` names: a local directory (wins whenever it exists, as before hub support)
 * or a Hugging Face hub model `org/name[@revision]`, also a bare legacy name such as `gpt2`.
 * Repo-name rules follow huggingface_hub's `validate_repo_id`: at most one `/`, each part of
 * letters, digits, `-`, `_`, `.`, not starting or ending with `-`/`.`, no `--` or `..`, 96 chars max.
 * No TensorFlow.js and no network here: the job compiler decides local vs hub with this alone.
 */
import { statSync } from 'node:fs';

export interface HubRef {
  /** `org/name`, or a bare legacy name (`gpt2`). */
  repo: string;
  /** Branch, tag or 40-hex commit; `main` when the id names none. */
  revision: string;
}

const PART = /^(?![-.])(?!.*(--|\.\.))[A-Za-z0-9_.-]{1,96}(?<![-.])$/;

/** `org/name[@revision]` -> HubRef, or undefined when `value` cannot be a hub id (a path, say). */
export function parseHubId(value: string): HubRef | undefined {
  const at = value.indexOf('@');
  const repo = at < 0 ? value : value.slice(0, at);
  const revision = at < 0 ? 'main' : value.slice(at + 1);
  if (at >= 0 && (revision === '' || /\s/.test(revision) || revision.split('/').some((p) => p === '' || p === '.' || p === '..'))) return undefined;
  const parts = repo.split('/');
  if (parts.length > 2 || !parts.every((p) => PART.test(p))) return undefined;
  return { repo, revision };
}

export function formatHubRef(ref: HubRef): string {
  return ref.revision === 'main' ? ref.repo : `${ref.repo}@${ref.revision}`;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The hub repo `value` names, or undefined when it names a local directory. `localPath` is where
 * `value` would be on disk (resolved against the job folder or the cwd): an existing directory there
 * wins, so `./gpt2` made by `ringtune model create` keeps working. Paths that cannot be hub ids
 * (absolute, `./x`, `a/b/c`) stay local and fail later with the usual "config.json not found".
 */
export function hubRefOf(value: string, localPath: string): HubRef | undefined {
  if (isDirectory(localPath) || value.startsWith('.') || value.startsWith('/') || value.startsWith('~')) return undefined;
  return parseHubId(value);
}
