/**
 * The prepared-dataset cache: a job's tokenised train and eval examples, built once per key
 * (cache-key.ts) and opened by every later run and every rank. Layout of one cache:
 *   <root>/<key>/train.{idx,tok,mask,src}   the training split (example-store.ts)
 *   <root>/<key>/eval.{idx,tok,mask,src}    the eval split
 *   <root>/<key>/meta.json                  key, inputs, labels, skipped records, preparation stats
 *   <root>/<key>.lock                       while one process builds it
 * Protocol, the same on one process and on N ranks sharing a cache directory:
 *   1. compute the key; if <key>/ exists, open it (checking magic, version, key and file sizes: a
 *      corrupt or foreign cache is a DataCacheError naming the file, never used and never rebuilt
 *      behind the user's back)
 *   2. else take <key>.lock (exclusive create). The winner builds in a staging directory and renames
 *      it to <key>/ (src/util/atomic.ts: a crash leaves no half-written cache), touching the lock
 *      every 5 s; the others wait for <key>/ to appear, taking over a lock untouched for 60 s (its
 *      builder died), so the data is prepared once, not once per rank.
 *   3. `ringtune data cache prune` takes the same lock before it removes <key>/, so it never removes a
 *      cache being built (or rebuilt); cache-admin.ts.
 */
import { mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { CompiledJob } from '../config/compile.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { replaceDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { buildCache, type BuiltMeta, type PrepareProgress, type PrepareStats } from './cache-build.ts';
import { cacheInputs, cacheKey, cacheRoot, fileSha256, type CacheInputs } from './cache-key.ts';
import type { Example, PreparedData } from './dataset.ts';
import { DataCacheError, StoreReader } from './example-store.ts';
import type { BadRecord } from './records.ts';

/** PreparedData whose splits stay on disk: `train.at(i)` reads example i; a rank reads its range of `eval`. */
export interface CachedData extends Omit<PreparedData, 'train' | 'eval'> {
  train: StoreReader<Example>;
  eval: StoreReader<Example>;
  dir: string;
  key: string;
  /** True when this call built the cache (false: it was there). */
  built: boolean;
  stats: PrepareStats;
  /**
   * With `verify`: the data files whose full sha256 differed from the one recorded at build (the
   * cache was then rebuilt; empty: the cache matched every byte).
   */
  stale?: string[];
}

export interface CacheOptions {
  /** Tokenising threads; default: the cores, or this thread for data under 4 MiB (starting a thread, its TypeScript loader and tokenizer costs ~1-3 s). */
  threads?: number;
  /** Rebuild even if a valid cache exists (`ringtune data prepare --force`). */
  force?: boolean;
  /**
   * Hash every byte of the data files and compare with the sha256 recorded at build; rebuild on a
   * difference (`ringtune data prepare --verify`: the key sees only size, mtime, first and last MiB).
   */
  verify?: boolean;
  onProgress?: (p: PrepareProgress) => void;
  env?: NodeJS.ProcessEnv;
  blockBytes?: number;
}

const LOCK_REFRESH_MS = 5_000;
const LOCK_STALE_MS = 60_000;

export async function openOrBuildCache(job: CompiledJob, tok: Tokenizer, modelLabels: string[] | undefined, o: CacheOptions = {}): Promise<CachedData> {
  const inputs = await cacheInputs(job, modelLabels);
  const key = cacheKey(inputs);
  const root = await cacheRoot(job.data.trainPath, o.env);
  const dir = join(root, key);
  let force = !!o.force;
  let stale: string[] | undefined;
  if (!force && await exists(dir)) {
    const found = await openCache(dir, key, false);
    if (!o.verify) return found;
    stale = await staleFiles(inputs, found.stats);
    if (stale.length === 0) return { ...found, stale };
    closeCache(found);
    force = true;
  }
  await mkdir(root, { recursive: true });
  const lock = join(root, `${key}.lock`);
  for (;;) {
    const held = await tryLock(lock);
    if (held) {
      try {
        if (!force && await exists(dir)) return openCache(dir, key, false); // built while we waited for the lock
        const dataBytes = inputs.dataFiles.reduce((a, f) => a + f.bytes, 0);
        const threads = o.threads ?? (dataBytes < 4 << 20 ? 0 : availableParallelism());
        const header = { key, ...inputs };
        let meta: BuiltMeta | undefined;
        await replaceDirAtomic(dir, async (staging) => {
          meta = await buildCache(job, header, staging, modelLabels, { modelDir: job.modelDir, tok, threads, blockBytes: o.blockBytes, onProgress: o.onProgress });
          const about: CacheAbout = { job: job.name, builtAt: new Date().toISOString() };
          await writeFileAtomic(join(staging, 'meta.json'), JSON.stringify({ ...meta, ...about, inputs }, null, 1));
        });
        return { ...await openCache(dir, key, true), ...(o.verify ? { stale: stale ?? [] } : {}) };
      } finally {
        await held.release();
      }
    }
    if (await exists(dir) && !force) return openCache(dir, key, false);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Opens a built cache (meta.json + both splits), checking that it is the one for `key`. */
export async function openCache(dir: string, key: string, built: boolean): Promise<CachedData> {
  const metaFile = join(dir, 'meta.json');
  let meta: BuiltMeta & { inputs: CacheInputs };
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8'));
  } catch (cause) {
    throw new DataCacheError(metaFile, `unreadable (${(cause as Error).message})`);
  }
  if (meta.key !== key) throw new DataCacheError(metaFile, `built for other inputs (key ${meta.key}, expected ${key})`);
  const train = StoreReader.open<Example>(join(dir, 'train'), key);
  let evalStore: StoreReader<Example>;
  try {
    evalStore = StoreReader.open<Example>(join(dir, 'eval'), key);
  } catch (err) {
    train.close();
    throw err;
  }
  const skipped: BadRecord[] = meta.skipped;
  // The directory's mtime is the cache's last use (`ringtune data cache prune --unused-days`); a
  // read-only cache volume simply keeps its build time.
  const now = new Date();
  await utimes(dir, now, now).catch(() => undefined);
  return { train, eval: evalStore, labels: meta.labels, skipped, dir, key, built, stats: meta.stats };
}

/** What meta.json says about a cache besides its key and contents (for `ringtune data cache list`). */
export interface CacheAbout {
  /** The job that built it (any job with the same data inputs shares it). */
  job: string;
  builtAt: string;
}

/** The data files whose every byte no longer hashes to what the cache recorded when it was built. */
async function staleFiles(inputs: CacheInputs, stats: PrepareStats): Promise<string[]> {
  const out: string[] = [];
  for (const [i, f] of inputs.dataFiles.entries()) if (await fileSha256(f.path) !== stats.dataSha256[i]) out.push(f.path);
  return out;
}

/** Gives back both splits' file descriptors (lengths stay readable; at() does not). */
export function closeCache(data: CachedData): void {
  data.train.close();
  data.eval.close();
}

/** An exclusive lock file, refreshed while held; a lock untouched for LOCK_STALE_MS is taken over. */
export async function tryLock(path: string): Promise<{ release: () => Promise<void> } | undefined> {
  try {
    const fh = await open(path, 'wx');
    await fh.writeFile(`${process.pid}\n`);
    await fh.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > LOCK_STALE_MS) await rm(path, { force: true });
    return undefined;
  }
  const timer = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, LOCK_REFRESH_MS);
  timer.unref();
  return { release: async () => { clearInterval(timer); await rm(path, { force: true }); } };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
