/**
 * Loads the native engine's addon (native/build/Release/ringtune_native.node, built at `npm ci` by
 * native/build.mjs) and types its functions. Absent addon = an explanation, never a throw: the
 * backend chain then moves on to wasm.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

type F32 = Float32Array;
type I32 = Int32Array;

/** Every function writes into caller-allocated outputs; sizes are checked in C++ and mismatches throw. */
export interface NativeAddon {
  setThreads(n: number): void;
  info(): { threads: number; blasThreads: number; blasConfig: string; blasCore: string; blasParallel: number };
  batchMatMul(a: F32, b: F32, c: F32, batch: number, batchA: number, batchB: number, M: number, K: number, N: number,
    transA: boolean, transB: boolean): void;
  /** transW: w is stored (out, in). */
  linear(x: F32, w: F32, bias: F32 | null, y: F32, N: number, inDim: number, outDim: number, transW?: boolean): void;
  linearGrad(dy: F32, x: F32, w: F32, dx: F32 | null, dw: F32 | null, db: F32 | null, N: number, inDim: number, outDim: number,
    transW?: boolean): void;
  /** Kernel families filled in by their own files add their functions here (see native/src/*.cc). */
  [name: string]: unknown;
}
export type { F32, I32 };

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const addonPath = join(root, 'native', 'build', 'Release', 'ringtune_native.node');
const skippedPath = join(root, 'native', 'build', 'skipped.txt');

let cached: { addon?: NativeAddon; why?: string } | undefined;

/** The addon, or why it is not available (a sentence for the start-up log). */
export function loadAddon(): { addon?: NativeAddon; why?: string } {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    const reason = existsSync(skippedPath) ? readFileSync(skippedPath, 'utf8').trim().split('\n')[0] : 'not built (run `npm ci` or `node native/build.mjs`)';
    cached = { why: reason };
    return cached;
  }
  try {
    cached = { addon: createRequire(import.meta.url)(addonPath) as NativeAddon };
  } catch (err) {
    cached = { why: `failed to load ${addonPath}: ${(err as Error).message.split('\n')[0]}` };
  }
  return cached;
}
