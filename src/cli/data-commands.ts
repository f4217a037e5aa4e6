/**
 * `ringtune data prepare JOB`: builds the job's prepared-dataset cache (data/prepared-cache.ts) ahead
 * of training, with a progress bar, and prints what it holds. Training builds it too when missing;
 * running this first keeps a cluster's start (and every resume) free of tokenising.
 * `ringtune data cache list|prune` shows and removes caches (data/cache-admin.ts).
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { loadJobFile } from '../config/compile.ts';
import { hubOptionsFromEnv } from '../hub/hub-options.ts';
import { resolveJobModel } from '../hub/resolve.ts';
import { listCaches, pruneCaches } from '../data/cache-admin.ts';
import type { PrepareProgress } from '../data/cache-build.ts';
import { cacheRoot, userCacheRoot } from '../data/cache-key.ts';
import { InputError } from '../errors.ts';
import { closeCache } from '../data/prepared-cache.ts';
import { prepareCachedRun } from '../train/prepare.ts';
import { action, floatArg, intArg, overridesOf, withOverrides } from './common.ts';

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('the prepared-dataset cache: tokenise once, read by every run and rank');
  withOverrides(data
    .command('prepare <job>'))
    .description('tokenise the job\'s data into its cache (reused while the data, tokenizer and data options are unchanged)')
    .option('--force', 'rebuild even if a valid cache exists')
    .option('--verify', 'hash every byte of the data files and rebuild if they differ from what the cache was built from (the cache key sees size, mtime and the first and last MiB)')
    .option('--threads <n>', 'tokenising threads (default: all cores; 0 = this thread)', intArg(0))
    .action(action(async (jobFile: string, o: { force?: boolean; verify?: boolean; threads?: number; output?: string; set?: string[] }) => {
      const job = await resolveJobModel(await loadJobFile(jobFile, overridesOf(o)), hubOptionsFromEnv());
      const files = [job.data.trainPath, ...(job.data.evalPath ? [job.data.evalPath] : [])];
      const sizes = await Promise.all(files.map((f) => stat(f).then((s) => s.size, () => 0)));
      const progress = new PrepareBar(files, sizes);
      const { data } = await prepareCachedRun(job, { force: o.force, verify: o.verify, threads: o.threads, onProgress: (p) => progress.update(p) }).finally(() => progress.stop());
      for (const f of data.stale ?? []) console.error(`[ringtune] ${f}: its bytes differ from those the cache was built from (same size and mtime); rebuilt`);
      const s = data.stats;
      closeCache(data);
      const mb = s.dataBytes / 1e6;
      console.log(JSON.stringify({
        cache: resolve(data.dir), built: data.built, records: s.records, tokens: s.tokens, truncated: s.truncated, skipped: s.skipped,
        train_examples: s.trainExamples, eval_examples: s.evalExamples, data_mb: +mb.toFixed(1),
        ...(data.stale ? { verified: true, stale: data.stale } : {}),
        ...(data.built ? { seconds: +s.seconds.toFixed(1), mb_per_s: +(mb / s.seconds).toFixed(2), threads: s.threads } : {}),
      }, null, 2));
    }));
  registerCacheCommands(data);
}

/** `ringtune data cache list|prune`: the root is --dir, else the job's (next to its data, or $RINGTUNE_CACHE), else $RINGTUNE_CACHE or the user's cache dir. */
function registerCacheCommands(data: Command): void {
  const cache = data.command('cache').description('list or remove prepared-dataset caches');
  const rootOf = async (jobFile: string | undefined, dir: string | undefined): Promise<string> => {
    if (dir) return resolve(dir);
    if (jobFile) return cacheRoot((await loadJobFile(jobFile)).data.trainPath);
    return userCacheRoot();
  };
  cache
    .command('list [job]')
    .description("the caches under a root (JOB's, or --dir, or $RINGTUNE_CACHE / the user's cache dir): size, age, last use, job and data")
    .option('--dir <root>', 'cache root directory')
    .option('--json', 'one JSON object instead of a table')
    .action(action(async (jobFile: string | undefined, o: { dir?: string; json?: boolean }) => {
      const listing = await listCaches(await rootOf(jobFile, o.dir));
      if (o.json) {
        console.log(JSON.stringify(listing, null, 2));
        return;
      }
      console.log(`${listing.root}: ${listing.caches.length} cache(s), ${mb(listing.caches.reduce((n, c) => n + c.bytes, 0))} MB`);
      const now = Date.now();
      for (const c of listing.caches) {
        const what = c.problem ?? `job ${c.job ?? '?'}, ${c.trainExamples ?? '?'} train / ${c.evalExamples ?? '?'} eval examples, data ${(c.data ?? []).join(' + ')}`;
        console.log(`  ${c.key}  ${mb(c.bytes).padStart(8)} MB  built ${age(c.builtAt ? now - Date.parse(c.builtAt) : undefined)} ago, used ${age(now - c.lastUsedMs)} ago${c.building ? '  [building]' : ''}  ${what}`);
      }
      for (const k of listing.buildingOnly) console.log(`  ${k}  [being built]`);
      for (const n of listing.staging) console.log(`  ${n}  [staging directory: a build in progress, or left by one that died; prune removes it once its lock is free]`);
    }));
  cache
    .command('prune [job]')
    .description('remove caches (never one being built: prune takes its build lock first)')
    .option('--dir <root>', 'cache root directory')
    .option('--unused-days <days>', 'remove caches not used for this many days', floatArg(0))
    .option('--all', 'remove every cache')
    .option('--dry-run', 'print what would be removed')
    .action(action(async (jobFile: string | undefined, o: { dir?: string; unusedDays?: number; all?: boolean; dryRun?: boolean }) => {
      if (!o.all && o.unusedDays === undefined) throw new InputError('ringtune data cache prune: say what to remove: --unused-days <days> or --all');
      if (o.all && o.unusedDays !== undefined) throw new InputError('ringtune data cache prune: --all and --unused-days together; pass one');
      const root = await rootOf(jobFile, o.dir);
      const r = await pruneCaches(root, { all: o.all, unusedMs: o.unusedDays === undefined ? undefined : o.unusedDays * 86_400_000, dryRun: o.dryRun });
      const verb = o.dryRun ? 'would remove' : 'removed';
      for (const c of r.removed) console.log(`${verb} ${c.dir} (${mb(c.bytes)} MB, job ${c.job ?? '?'})`);
      for (const c of r.busy) console.log(`kept ${c.dir}: being built (its lock is held)`);
      for (const n of r.removedStaging) console.log(`removed staging directory ${join(root, n)}`);
      console.log(`${verb} ${r.removed.length} cache(s), ${mb(r.removed.reduce((n, c) => n + c.bytes, 0))} MB; kept ${r.kept.length + r.busy.length}`);
    }));
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

function age(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '?';
  const s = Math.max(0, ms / 1000);
  return s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} days`;
}

/** A bar over the data files' bytes on a TTY; elsewhere a line per tenth (logs, CI). */
class PrepareBar {
  private readonly bar = process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'prepare |{bar}| {percentage}% | {mb}/{totalMb} MB | {records} records | ETA {eta_formatted}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  private readonly total: number;
  private started = false;
  private lastTenth = -1;

  constructor(private readonly files: string[], private readonly sizes: number[]) {
    this.total = sizes.reduce((a, b) => a + b, 0);
  }

  update(p: PrepareProgress): void {
    if (p.phase !== 'tokenise') return;
    const before = this.sizes.slice(0, this.files.indexOf(p.file)).reduce((a, b) => a + b, 0);
    const done = Math.min(this.total, before + p.bytesDone);
    const payload = { mb: (done / 1e6).toFixed(1), totalMb: (this.total / 1e6).toFixed(1), records: p.records };
    if (this.bar) {
      if (!this.started) this.bar.start(this.total, 0, payload);
      this.started = true;
      this.bar.update(done, payload);
      return;
    }
    const tenth = this.total ? Math.floor((10 * done) / this.total) : 10;
    if (tenth > this.lastTenth) console.error(`[ringtune] prepare: ${tenth * 10}% (${payload.mb}/${payload.totalMb} MB, ${p.records} records)`);
    this.lastTenth = tenth;
  }

  stop(): void {
    if (this.started) this.bar?.stop();
  }
}
