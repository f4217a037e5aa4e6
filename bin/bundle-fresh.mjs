// Whether dist/ringtune.mjs (scripts/bundle.mjs) still matches the sources it was built from: the
// bundle itself and every input have the size and mtime recorded when it was built. Any edit, checkout
// or deletion makes it stale, and bin/ringtune.js then runs the sources through tsx instead.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = join(root, 'dist', 'ringtune.mjs');
export const INPUTS = join(root, 'dist', 'ringtune.inputs.json');

/** [size, mtimeMs] of a file, or null when it is missing. */
export function fingerprint(file) {
  try {
    const s = statSync(file);
    return [s.size, s.mtimeMs];
  } catch {
    return null;
  }
}

const same = (a, b) => a !== null && b !== null && a[0] === b[0] && a[1] === b[1];

/** Why the bundle cannot be used (a short reason), or undefined when it is fresh. */
export function bundleStale() {
  let list;
  try {
    list = JSON.parse(readFileSync(INPUTS, 'utf8'));
  } catch {
    return 'not built';
  }
  if (!same(fingerprint(BUNDLE), list.bundle)) return 'dist/ringtune.mjs changed since it was built';
  for (const [file, print] of Object.entries(list.inputs)) {
    if (!same(fingerprint(join(root, file)), print)) return `${file} changed since the bundle was built`;
  }
  return undefined;
}
