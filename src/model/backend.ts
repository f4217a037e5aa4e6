/**
 * tfjs backend selection at start-up. Order (fastest first): tfjs-node-gpu, tfjs-node, native (ringtune's
 * own engine over OpenBLAS, src/model/native, built at `npm ci` where a compiler and OpenBLAS exist),
 * wasm, cpu.
 * `RINGTUNE_BACKEND` or the job spec's `backend` field force one; `auto` tries them in order.
 *
 * Why the care: tfjs-node(-gpu) are optionalDependencies that cannot install without network access
 * to libtensorflow; npm then removes them (MODULE_NOT_FOUND) or leaves them half-installed
 * ("native addon module ... can not be found"). Both mean "absent". Loading the second node package
 * after the first failed prints ~150 "kernel already registered" warnings, so once one node package
 * fails we skip the other unless it is asked for by name (notes/tfjs-backends.md).
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.ts';
import { BACKENDS, type BackendChoice, type BackendName } from './backend-names.ts';

export { BACKENDS, type BackendChoice, type BackendName } from './backend-names.ts';

const require = createRequire(import.meta.url);
let active: BackendName | undefined;
let selecting: Promise<BackendInfo> | undefined;
// Read from RINGTUNE_THREADS when first needed, not at import: a bad value is then a one-line
// BackendError where the backend starts, not a stack trace from loading this module.
let nativeThreadsSet: number | undefined;
const nativeThreads = (): number => (nativeThreadsSet ??= threadsFrom(process.env.RINGTUNE_THREADS));

/**
 * Threads for the native engine (BLAS and its own kernels): a positive integer or "auto" (all cores),
 * default 1 here; the CLI resolves --threads / RINGTUNE_THREADS / the job's `threads` and calls setThreads.
 */
export function threadsFrom(value: string | number | undefined): number {
  if (value === undefined || value === '') return 1;
  if (value === 'auto') return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new BackendError(`threads must be a positive integer or "auto", got "${value}"`);
  return n;
}

/** Sets the native engine's thread count (before or after initBackend); other backends ignore it. */
export async function setThreads(n: number): Promise<void> {
  nativeThreadsSet = threadsFrom(n);
  if (active === 'native') {
    const { loadAddon } = await import('./native/addon.ts');
    loadAddon().addon?.setThreads(nativeThreads());
  }
}

export interface BackendInfo {
  name: BackendName;
  /** Why earlier candidates were skipped, e.g. "tensorflow-gpu: not installed". */
  skipped: string[];
}

async function tryNodePackage(pkg: string): Promise<string | undefined> {
  try {
    require(pkg);
    return undefined;
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (/Cannot find module|MODULE_NOT_FOUND/.test(msg)) return 'not installed';
    if (/native addon|tfjs_binding/.test(msg)) return 'installed without its native addon';
    return msg.split('\n')[0];
  }
}

async function tryBackend(name: BackendName): Promise<string | undefined> {
  switch (name) {
    case 'tensorflow-gpu': {
      const why = await tryNodePackage('@tensorflow/tfjs-node-gpu');
      if (why) return why;
      return (await tf.setBackend('tensorflow')) ? undefined : 'registered but failed to initialise';
    }
    case 'tensorflow': {
      const why = await tryNodePackage('@tensorflow/tfjs-node');
      if (why) return why;
      return (await tf.setBackend('tensorflow')) ? undefined : 'registered but failed to initialise';
    }
    case 'native': {
      const { loadAddon } = await import('./native/addon.ts');
      const { addon, why } = loadAddon();
      if (!addon) return why;
      await import('@tensorflow/tfjs-backend-cpu'); // its kernels are the native backend's fallbacks
      const { NativeBackend } = await import('./native/backend.ts');
      const { registerNativeKernels, NATIVE } = await import('./native/kernels.ts');
      registerNativeKernels();
      tf.registerBackend(NATIVE, () => new NativeBackend(addon));
      addon.setThreads(nativeThreads());
      return (await tf.setBackend(NATIVE)) ? undefined : 'failed to initialise';
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const wasmFile = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm');
      wasm.setWasmPaths(dirname(wasmFile) + sep);
      await import('./kernels/wasm-kernels.ts');
      return (await tf.setBackend('wasm')) ? undefined : 'failed to initialise';
    }
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu');
      return (await tf.setBackend('cpu')) ? undefined : 'failed to initialise';
    }
  }
}

/** "OpenBLAS 0.3.21 Haswell, OpenMP": which BLAS build and kernels the native engine runs on. */
async function blasSummary(): Promise<string> {
  const { loadAddon } = await import('./native/addon.ts');
  const info = loadAddon().addon?.info();
  if (!info) return 'no BLAS';
  const version = /OpenBLAS \S+/.exec(info.blasConfig)?.[0] ?? 'BLAS';
  return `${version} ${info.blasCore}, ${['sequential', 'pthreads', 'OpenMP'][info.blasParallel] ?? 'unknown'}`;
}

/** Reads the choice from the argument, else RINGTUNE_BACKEND, else 'auto'. */
export function backendChoiceFrom(value: string | undefined): BackendChoice {
  const v = (value ?? 'auto').trim();
  if (v === 'auto' || (BACKENDS as readonly string[]).includes(v)) return v as BackendChoice;
  throw new BackendError(`unknown backend "${v}": use one of auto, ${BACKENDS.join(', ')}`);
}

/**
 * Selects and initialises the tfjs backend once per process. Later calls return the same answer;
 * asking for a different backend after one is active is an error (kernels are global).
 */
export async function initBackend(
  choice: BackendChoice = backendChoiceFrom(process.env.RINGTUNE_BACKEND),
  log: (line: string) => void = (line) => console.error(line),
): Promise<BackendInfo> {
  // A call while another is still selecting waits for it: two concurrent initialisations of the
  // wasm backend make both fail (test files that import two fixture modules start two).
  while (selecting) await selecting.catch(() => {});
  if (active) {
    if (choice !== 'auto' && choice !== active) {
      throw new BackendError(`backend "${active}" is already active in this process; cannot switch to "${choice}"`);
    }
    return { name: active, skipped: [] };
  }
  selecting = select(choice, log);
  try {
    return await selecting;
  } finally {
    selecting = undefined;
  }
}

async function select(choice: BackendChoice, log: (line: string) => void): Promise<BackendInfo> {
  // tfjs-core's node bundle registers no gradients; the umbrella package's bundle does (its ESM files
  // cannot load in Node: they import directories). Loaded here, not at import: it costs ~0.8 CPU-s, and
  // the processes that never compute (coordinator, launcher, status) import this module too.
  await import('@tensorflow/tfjs');
  const candidates: BackendName[] = choice === 'auto' ? [...BACKENDS] : [choice];
  const skipped: string[] = [];
  let nodeFailed = false;
  for (const name of candidates) {
    if (choice === 'auto' && name === 'tensorflow' && nodeFailed) {
      skipped.push(`${name}: skipped after tensorflow-gpu failed to load`);
      // Only skip when the GPU package was present but broken; a plain "not installed" is harmless.
      if (!skipped.some((s) => s.startsWith('tensorflow-gpu: not installed'))) continue;
      skipped.pop();
    }
    const why = await tryBackend(name);
    if (why === undefined) {
      active = name;
      const detail = name === 'native' ? ` (${nativeThreads()} thread${nativeThreads() > 1 ? 's' : ''}, ${await blasSummary()})` : '';
      log(`[ringtune] tfjs backend: ${name}${detail}${skipped.length ? ` (skipped ${skipped.join('; ')})` : ''}`);
      return { name, skipped };
    }
    if (name === 'tensorflow-gpu') nodeFailed = true;
    skipped.push(`${name}: ${why}`);
  }
  throw new BackendError(
    `no tfjs backend could be initialised (${skipped.join('; ')}). ` +
      'Run `npm ci` to install @tensorflow/tfjs-backend-wasm and @tensorflow/tfjs-backend-cpu.',
  );
}

export function activeBackend(): BackendName | undefined {
  return active;
}
