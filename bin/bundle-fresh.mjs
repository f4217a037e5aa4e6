// Whether dist/ringtune.mjs (scripts/bundle.mjs) still matches the sources it was built from: the
// bundle itself and every input have the size and mtime recorded when it was built. Any edit, checkout
// or deletion makes it stale, and bin/ringtune.js then runs the sources through tsx instead.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = join(root, 'dist', 'ringtune.mjs');
export const INPUTS = join(root, 'dist', 'ringtune.inputs.json');
export const BUILDER = join(root, 'scripts', 'bundle.mjs');

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

function readList() {
  try {
    return JSON.parse(readFileSync(INPUTS, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Why the bundle cannot be used (a short reason), or undefined when it is fresh. */
export function bundleStale(list = readList()) {
  if (!list) return 'not built';
  // A changed bundler (scripts/bundle.mjs) may make different bundles from the same sources.
  if (!list.threads || !same(fingerprint(BUILDER), list.builder)) return 'scripts/bundle.mjs changed since the bundle was built';
  if (!same(fingerprint(BUNDLE), list.bundle)) return 'dist/ringtune.mjs changed since it was built';
  for (const [out, print] of Object.entries(list.threads ?? {})) {
    if (!same(fingerprint(join(root, 'dist', out)), print)) return `dist/${out} changed since it was built`;
  }
  for (const [file, print] of Object.entries(list.inputs)) {
    if (!same(fingerprint(join(root, file)), print)) return `${file} changed since the bundle was built`;
  }
  return undefined;
}

/**
 * What a worker thread should import for its entry module (a src/ .ts file URL): the entry's own bundle
 * in dist/ while the bundles are fresh, else the source itself (then the thread needs tsx).
 */
export function threadEntry(entryUrl) {
  if (process.env.RINGTUNE_BUNDLE === '0') return { url: entryUrl, bundled: false };
  const list = readList();
  const out = list?.threadEntries?.[relative(root, fileURLToPath(entryUrl)).split('\\').join('/')];
  if (!out || bundleStale(list)) return { url: entryUrl, bundled: false };
  return { url: pathToFileURL(join(root, 'dist', out)).href, bundled: true };
}
