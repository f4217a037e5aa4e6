/**
 * `ringtune data prepare JOB`: builds the job's prepared-dataset cache (data/prepared-cache.ts) ahead
 * of training, with a progress bar, and prints what it holds. Training builds it too when missing;
 * running this first keeps a cluster's start (and every resume) free of tokenising.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { loadJobFile } from '../config/compile.ts';
import { hubOptionsFromEnv } from '../hub/hub-options.ts';
import { resolveJobModel } from '../hub/resolve.ts';
import type { PrepareProgress } from '../data/cache-build.ts';
import { closeCache } from '../data/prepared-cache.ts';
import { prepareCachedRun } from '../train/prepare.ts';
import { action, intArg, overridesOf, withOverrides } from './common.ts';

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('the prepared-dataset cache: tokenise once, read by every run and rank');
  withOverrides(data
    .command('prepare <job>'))
    .description('tokenise the job\'s data into its cache (reused while the data, tokenizer and data options are unchanged)')
    .option('--force', 'rebuild even if a valid cache exists')
    .option('--threads <n>', 'tokenising threads (default: all cores; 0 = this thread)', intArg(0))
    .action(action(async (jobFile: string, o: { force?: boolean; threads?: number; output?: string; set?: string[] }) => {
      const job = await resolveJobModel(await loadJobFile(jobFile, overridesOf(o)), hubOptionsFromEnv());
      const files = [job.data.trainPath, ...(job.data.evalPath ? [job.data.evalPath] : [])];
      const sizes = await Promise.all(files.map((f) => stat(f).then((s) => s.size, () => 0)));
      const progress = new PrepareBar(files, sizes);
      const { data } = await prepareCachedRun(job, { force: o.force, threads: o.threads, onProgress: (p) => progress.update(p) }).finally(() => progress.stop());
      const s = data.stats;
      closeCache(data);
      const mb = s.dataBytes / 1e6;
      console.log(JSON.stringify({
        cache: resolve(data.dir), built: data.built, records: s.records, tokens: s.tokens, truncated: s.truncated, skipped: s.skipped,
        train_examples: s.trainExamples, eval_examples: s.evalExamples, data_mb: +mb.toFixed(1),
        ...(data.built ? { seconds: +s.seconds.toFixed(1), mb_per_s: +(mb / s.seconds).toFixed(2), threads: s.threads } : {}),
      }, null, 2));
    }));
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
