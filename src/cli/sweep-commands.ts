/** `ringtune sweep`: hyperparameter sweeps over any job field (src/sweep/). */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Threads } from '../config/compile.ts';
import { bestTrial, formatValue, leaderboardTable } from '../sweep/leaderboard.ts';
import { SWEEP_NAMES } from '../sweep/sweep-log.ts';
import { loadSweepFile } from '../sweep/sweep-spec.ts';
import { runSweep } from '../sweep/sweep.ts';
import { baseJobName, checkTrials, trialId } from '../sweep/trial-job.ts';
import { InputError } from '../errors.ts';
import { action, BACKEND_HELP, intArg, stopOnSignals, threadsOption } from './common.ts';
import { stringifyRecord } from '../run/record-json.ts';

export function registerSweepCommand(program: Command): void {
  program
    .command('sweep <sweep>')
    .description('hyperparameter sweep: train a base job over a search space (grid, random, asha), rank the trials by an eval metric, link the best model')
    .option('--workers <n>', 'run each trial on a local cluster of N worker processes (ringtune local); default: ringtune train on one process. With --cluster: the workers of each trial (default: cluster.workers)', intArg(1))
    .option('--cluster <nats-url>', "hand each trial to a running cluster: a `ringtune coordinator` per trial on this NATS, trained by the cluster's `ringtune worker --serve` processes")
    .option('--job <names>', "with --cluster: the job name(s) the serving workers joined, comma-separated, one per parallel trial (default: the base job's name)", (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--secret-file <file>', "with --cluster: the file holding the cluster's job secret (or RINGTUNE_JOB_SECRET / RINGTUNE_JOB_SECRET_FILE)")
    .option('--parallel <p>', 'run up to P trials at once (asha: within a rung); with --cluster at most one per --job name', intArg(1), 1)
    .option('--resume', 'continue the sweep in the output directory: finished trials are not run again, an interrupted one continues from its checkpoint')
    .option('--overwrite', 'start over: remove the previous sweep (its trials, sweep.jsonl, sweep-state.json, sweep.html, best)')
    .option('--output <dir>', "write the sweep here instead of the sweep file's `output` (relative to the working directory)")
    .option('--dry-run', 'check the sweep file and every trial job, print the trials, train nothing')
    .option('--backend <name>', `${BACKEND_HELP} (passed to every trial)`)
    .addOption(threadsOption('as ringtune train / local decide'))
    .action(action(async (file: string, o: { workers?: number; cluster?: string; job?: string[]; secretFile?: string; parallel: number; resume?: boolean; overwrite?: boolean; output?: string; dryRun?: boolean; backend?: string; threads?: Threads }) => {
      const sweep = await loadSweepFile(file, o.output);
      for (const [flag, given] of [['--job', o.job], ['--secret-file', o.secretFile]] as const) {
        if (given !== undefined && !o.cluster) throw new InputError(`${flag} names what a running cluster serves: it needs --cluster NATS_URL`);
      }
      if (o.dryRun) {
        checkTrials(sweep);
        console.log(stringifyRecord({
          sweep: sweep.name, output: sweep.outputDir, strategy: sweep.strategy, metric: sweep.metric, mode: sweep.mode, rungs: sweep.asha?.rungs,
          trials: sweep.configs.map((params, i) => ({ id: trialId(i), params })),
        }, 2));
        return;
      }
      const signals = stopOnSignals();
      const r = await runSweep(sweep, {
        resume: o.resume, overwrite: o.overwrite, workers: o.workers, parallel: o.parallel, backend: o.backend, threads: o.threads === undefined ? undefined : String(o.threads), stop: signals.stop,
        cluster: o.cluster ? { nats: o.cluster, secretFile: o.secretFile && resolve(o.secretFile), jobs: o.job ?? [baseJobName(sweep)] } : undefined,
      }).finally(signals.dispose);
      console.log(leaderboardTable(sweep, r.board));
      if (r.interrupted) process.exit(signals.exitCode() ?? 130);
      const best = bestTrial(r.board);
      console.log(best
        ? `best: ${best.id} (${sweep.metric} ${formatValue(best.metric)}); model: ${join(sweep.outputDir, SWEEP_NAMES.best)} -> ${best.id}/final (symlink)`
        : 'best: none (no trial finished)');
      console.log(`leaderboard: ${join(sweep.outputDir, SWEEP_NAMES.html)}; log: ${join(sweep.outputDir, SWEEP_NAMES.log)}`);
      if (!best) process.exitCode = 1;
    }));
}
