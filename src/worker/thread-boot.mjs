// Entry of a worker thread: loads the module named in workerData.entry (a src/ .ts file URL), from its
// esbuild bundle in dist/ while the bundles match the sources (scripts/bundle.mjs), else from the
// source, registering tsx in this thread first (a thread does not inherit the parent's loader hooks).
// The bundle starts a thread in about a third of the CPU time.
import { workerData } from 'node:worker_threads';
import { threadEntry } from '../../bin/bundle-fresh.mjs';

const { url, bundled } = threadEntry(workerData.entry);
if (!bundled) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(url);
