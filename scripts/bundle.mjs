// Bundles the CLI (src/cli/main.ts and everything it imports from src/) into dist/ringtune.mjs with
// esbuild, so a `ringtune` process starts without tsx: under tsx every module goes through loader hooks
// on a separate thread, and a local cluster starts five or more such processes (bench numbers in
// docs/architecture.md). bin/ringtune.js runs the bundle only while it is fresh (bin/bundle-fresh.mjs:
// every input's size and mtime as bundled), else the sources through tsx, so an edited tree never runs
// stale code. Worker threads' entries (heartbeat, ring stripes, data preparation) are bundled beside it
// (dist/<entry>.mjs), and src/worker/thread-boot.mjs loads those on the same condition.
//
// Run by `npm ci` (postinstall) and at the start of `npm test`. Never fails either: without esbuild, or
// when bundling fails, the reason is logged and the CLI runs through tsx as before. RINGTUNE_BUNDLE=0
// skips it (the images' deps stage, which has no src/ yet).
//
//   node scripts/bundle.mjs            bundle when stale
//   node scripts/bundle.mjs --check    exit 0 when fresh, 1 when stale (prints why)
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILDER, BUNDLE, INPUTS, bundleStale, fingerprint } from '../bin/bundle-fresh.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
/** Worker-thread entries (booted by src/worker/thread-boot.mjs), each bundled beside the CLI as dist/<name>.mjs. */
const THREADS = ['src/worker/heartbeat-thread.ts', 'src/collective/stripe-thread-main.ts', 'src/data/prepare-thread.ts'];

/**
 * Each module keeps its own import.meta.url (proto files, bin/, assets and thread entries are found
 * relative to the source file): rewritten to the source's URL relative to the bundle, so the tree can move.
 */
const ownImportMetaUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.(ts|mjs|js)$/ }, (args) => {
      if (!args.path.startsWith(src)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = relative(dirname(BUNDLE), args.path).split('\\').join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

function skip(reason) {
  rmSync(INPUTS, { force: true }); // a bundle left from an earlier build must read as stale
  console.warn(`[ringtune] CLI not bundled (it runs through tsx): ${reason}`);
}

async function bundle() {
  if (process.env.RINGTUNE_BUNDLE === '0') return skip('RINGTUNE_BUNDLE=0');
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    return skip(`esbuild cannot be loaded (${String(e.message).split('\n')[0]})`);
  }
  const tmp = join(dirname(BUNDLE), `.build-${process.pid}`); // ringtune.mjs and its .map, renamed into place
  try {
    // Fingerprints are taken before the build: an edit during it makes the result stale, never wrongly fresh.
    const before = new Map();
    const result = await esbuild.build({
      entryPoints: { ringtune: join(src, 'cli', 'main.ts'), ...Object.fromEntries(THREADS.map((f) => [basename(f, '.ts'), join(root, f)])) },
      outdir: tmp, outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', format: 'esm',
      target: 'node20', packages: 'external', metafile: true, sourcemap: 'linked', logLevel: 'silent',
      // fingerprints first: it returns nothing, so esbuild goes on to the next onLoad for the same file.
      plugins: [{ name: 'fingerprints', setup: (b) => b.onLoad({ filter: /.*/ }, (a) => { before.set(a.path, fingerprint(a.path)); return undefined; }) }, ownImportMetaUrl],
      banner: { js: '// Built by scripts/bundle.mjs from src/; bin/ringtune.js runs it only while it matches them. Do not edit.' },
    });
    const inputs = {};
    for (const file of Object.keys(result.metafile.inputs)) {
      const abs = join(root, file);
      inputs[relative(root, abs)] = before.get(abs) ?? fingerprint(abs);
    }
    const threads = {};
    const threadEntries = {};
    for (const f of THREADS) {
      const out = `${basename(f, '.ts')}.mjs`;
      for (const x of [`${out}.map`, out]) renameSync(join(tmp, x), join(dirname(BUNDLE), x));
      threads[out] = fingerprint(join(dirname(BUNDLE), out));
      threadEntries[f] = out;
    }
    renameSync(join(tmp, 'ringtune.mjs.map'), `${BUNDLE}.map`);
    renameSync(join(tmp, 'ringtune.mjs'), BUNDLE);
    rmSync(tmp, { recursive: true, force: true });
    const list = `${INPUTS}.${process.pid}.tmp`;
    writeFileSync(list, JSON.stringify({ builder: fingerprint(BUILDER), bundle: fingerprint(BUNDLE), threads, threadEntries, inputs }, null, 1) + '\n');
    renameSync(list, INPUTS);
    console.log(`[ringtune] CLI bundled: ${relative(root, BUNDLE)} (${Object.keys(inputs).length} sources)`);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    skip(`bundling failed: ${String(e.errors?.[0]?.text ?? e.message).split('\n')[0]}`);
  }
}

const why = bundleStale();
if (process.argv.includes('--check')) {
  if (why) console.log(`stale: ${why}`);
  process.exit(why ? 1 : 0);
}
if (why) await bundle();
