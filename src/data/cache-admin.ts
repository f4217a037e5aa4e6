/**
 * `ringtune data cache list|prune`: the caches under one root (cache-key.ts cacheRoot), their
 * size, age, last use and what they were built from, and removing old ones. A cache's last use is
 * its directory's mtime (openCache touches it). Pruning takes the cache's build lock
 * (prepared-cache.ts) before removing it, so a cache being built or rebuilt is never removed; a
 * staging directory left by a builder that died (`.<key>.tmp-*`) goes with it when its lock is free.
 * A reader that already opened a removed cache keeps reading it (its files stay open); the next
 * run rebuilds it.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheAbout } from './prepared-cache.ts';
import { tryLock } from './prepared-cache.ts';

export interface CacheEntry {
  key: string;
  dir: string;
  bytes: number;
  /** From meta.json (absent when it is unreadable: `problem` says why). */
  job?: string;
  builtAt?: string;
  data?: string[];
  trainExamples?: number;
  evalExamples?: number;
  lastUsedMs: number;
  /** Its build lock is held: being built or rebuilt (prune leaves it). */
  building: boolean;
  problem?: string;
}

export interface CacheListing {
  root: string;
  caches: CacheEntry[];
  /** Keys with a lock but no cache yet: a first build in progress (or a builder that died < 60 s ago). */
  buildingOnly: string[];
  /** Staging directories (a build in progress, or left by one that died). */
  staging: string[];
}

const KEY = /^[0-9a-f]{32}$/;
const STAGING = /^\.([0-9a-f]{32})\.tmp-/;

export async function listCaches(root: string): Promise<CacheListing> {
  const names = await readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const locks = new Set(names.filter((n) => n.endsWith('.lock')).map((n) => n.slice(0, -'.lock'.length)));
  const caches: CacheEntry[] = [];
  for (const key of names.filter((n) => KEY.test(n)).sort()) {
    const dir = join(root, key);
    const s = await stat(dir).catch(() => undefined);
    if (!s?.isDirectory()) continue;
    const entry: CacheEntry = { key, dir, bytes: await dirBytes(dir), lastUsedMs: s.mtimeMs, building: locks.has(key) };
    try {
      const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Partial<CacheAbout> & {
        inputs?: { dataFiles?: Array<{ path: string }> }; stats?: { trainExamples?: number; evalExamples?: number };
      };
      Object.assign(entry, {
        job: meta.job, builtAt: meta.builtAt, data: meta.inputs?.dataFiles?.map((f) => f.path),
        trainExamples: meta.stats?.trainExamples, evalExamples: meta.stats?.evalExamples,
      });
    } catch (err) {
      entry.problem = `meta.json unreadable (${(err as Error).message})`;
    }
    caches.push(entry);
  }
  const have = new Set(caches.map((c) => c.key));
  return {
    root, caches,
    buildingOnly: [...locks].filter((k) => !have.has(k)).sort(),
    staging: names.filter((n) => STAGING.test(n)).sort(),
  };
}

export interface PruneOptions {
  /** Remove every cache (not being built). */
  all?: boolean;
  /** Remove caches not used for this long. */
  unusedMs?: number;
  /** Only say what would be removed. */
  dryRun?: boolean;
  now?: number;
}

export interface PruneResult {
  removed: CacheEntry[];
  /** Old enough, but their lock is held: being built or rebuilt. */
  busy: CacheEntry[];
  kept: CacheEntry[];
  removedStaging: string[];
}

export async function pruneCaches(root: string, o: PruneOptions): Promise<PruneResult> {
  const now = o.now ?? Date.now();
  const listing = await listCaches(root);
  const out: PruneResult = { removed: [], busy: [], kept: [], removedStaging: [] };
  for (const c of listing.caches) {
    if (!o.all && !(o.unusedMs !== undefined && now - c.lastUsedMs >= o.unusedMs)) {
      out.kept.push(c);
      continue;
    }
    if (o.dryRun) {
      (c.building ? out.busy : out.removed).push(c);
      continue;
    }
    const lock = await takeLock(join(root, `${c.key}.lock`));
    if (!lock) {
      out.busy.push(c);
      continue;
    }
    try {
      await rm(c.dir, { recursive: true, force: true });
      out.removed.push(c);
    } finally {
      await lock.release();
    }
  }
  // Staging directories whose key's lock is free: their builder is gone.
  for (const name of listing.staging) {
    if (o.dryRun) continue;
    const key = STAGING.exec(name)![1];
    const lock = await takeLock(join(root, `${key}.lock`));
    if (!lock) continue;
    try {
      await rm(join(root, name), { recursive: true, force: true });
      out.removedStaging.push(name);
    } finally {
      await lock.release();
    }
  }
  return out;
}

/** The build lock; a stale one (its builder died: untouched for 60 s) is taken over on the second try. */
async function takeLock(path: string): ReturnType<typeof tryLock> {
  return (await tryLock(path)) ?? tryLock(path);
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? await dirBytes(p) : await stat(p).then((s) => s.size, () => 0);
  }
  return n;
}
