#!/usr/bin/env node
// Runs the CLI: the esbuild bundle (dist/ringtune.mjs, scripts/bundle.mjs) while it matches the sources,
// else the TypeScript sources through tsx, so `npx ringtune` needs no build step and never runs stale
// code. RINGTUNE_BUNDLE=0 always takes the sources; RINGTUNE_BUNDLE=1 insists on the bundle (an error
// naming what changed when it is stale).
import { pathToFileURL } from 'node:url';
import { BUNDLE, bundleStale } from './bundle-fresh.mjs';

const want = process.env.RINGTUNE_BUNDLE;
const stale = want === '0' ? 'RINGTUNE_BUNDLE=0' : bundleStale();
if (!stale) {
  process.setSourceMapsEnabled(true); // stack traces name src/ files and lines (dist/ringtune.mjs.map)
  await import(pathToFileURL(BUNDLE).href);
} else if (want === '1') {
  console.error(`ringtune: RINGTUNE_BUNDLE=1 but the bundle cannot be used: ${stale}; run \`npm run build\``);
  process.exit(2);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
