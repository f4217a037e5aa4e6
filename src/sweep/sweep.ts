/**
 * The sweep recipe, top to bottom:
 *   compile every trial's job (nothing is written before all are valid)
 *   -> claim the output directory (fresh, --overwrite, or --resume the same sweep: sweep-log.ts)
 *   -> for each rung (grid / random: one rung, the base job's own length; asha: halving.ts rungs)
 *        for each trial still in the sweep, started in trial order, up to --parallel at once,
 *        unless the log says it finished this rung:
 *          write trial-NNNN/job.yaml, run it (run-trial.ts), log its metric and curves
 *        asha, once every trial of the rung has ended: the best 1/eta continue to the next rung from
 *        their checkpoints, the rest are pruned
 *   -> leaderboard, sweep.html, sweep-state.json, and best -> trial-NNNN/final (a relative symlink)
 * After every trial the state file and sweep.html are rewritten, so both show a sweep in progress.
 * This process trains nothing itself and loads no model: each trial is a `ringtune train` (or
 * `ringtune local`, or `ringtune coordinator` on a running cluster) child process. It is the only
 * writer of sweep.jsonl and sweep-state.json (SweepLog.serial), however many trials run at once; a
 * trial's result depends on its own job only, so grid and random rank the same at any --parallel.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { InputError, RingtuneError } from '../errors.ts';
import { finalModelDir } from '../run/outputs.ts';
import { promote } from './halving.ts';
import { bestTrial, formatValue, leaderboard, trialRows, type TrialRow } from './leaderboard.ts';
import { readTrialMetrics, runTrialProcess, type ClusterTarget } from './run-trial.ts';
import { formatParams } from './space.ts';
import { writeSweepHtml } from './sweep-html.ts';
import { fingerprintOf, SWEEP_NAMES, SweepLog, type SweepState } from './sweep-log.ts';
import type { CompiledSweep } from './sweep-spec.ts';
import { checkTrials, trialId, trialJob, writeTrialJob } from './trial-job.ts';

export interface SweepOptions {
  resume?: boolean;
  overwrite?: boolean;
  /** Run each trial on a local cluster of this many workers (`ringtune local`); with `cluster`: each trial's workers. */
  workers?: number;
  /**
   * Hand each trial to a running cluster (`ringtune coordinator` against its `ringtune worker --serve`
   * processes): the trial's job takes the name of one of `jobs`, the names the serving workers join.
   */
  cluster?: ClusterTarget & { jobs: string[] };
  /** Trials at once (default 1); with `cluster`, at most one per job name. */
  parallel?: number;
  backend?: string;
  threads?: string;
  /** Aborted: the running trials stop after their step with a checkpoint, and the sweep returns (resume with --resume). */
  stop?: AbortSignal;
  log?: (line: string) => void;
  /** Cores of this machine, shared out among parallel trials when `threads` is not given. */
  cores?: number;
}

export interface SweepResult {
  /** Best first (leaderboard.ts). */
  board: TrialRow[];
  best?: TrialRow;
  /** The best trial's final model, as `best/` links to it. */
  bestModel?: string;
  interrupted: boolean;
}

/** What the fingerprint of a sweep covers: a resumed sweep must be this same sweep. */
export function definitionOf(s: CompiledSweep): Record<string, unknown> {
  return { strategy: s.strategy, seed: s.seed, metric: s.metric, mode: s.mode, asha: s.asha ?? null, space: s.space, base: s.base.spec, configs: s.configs };
}

/**
 * Runs `fn` over `items` in order, at most `lanes` at once; lane i's calls get `i` (a trial's cluster
 * job name, say). Items are taken in order by whichever lane frees first.
 */
async function inLanes<T>(items: readonly T[], lanes: number, fn: (item: T, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all([...Array(Math.min(lanes, items.length)).keys()].map(async (lane) => {
    while (next < items.length) await fn(items[next++], lane);
  }));
}

/** Native engine threads of each parallel trial's process when the user gave none: the cores shared out (at least 1). */
export function parallelThreads(o: Pick<SweepOptions, 'threads' | 'parallel' | 'workers' | 'cluster'>, cores: number): string | undefined {
  if (o.threads !== undefined || o.cluster || (o.parallel ?? 1) <= 1) return o.threads;
  return String(Math.max(1, Math.floor(cores / ((o.parallel ?? 1) * (o.workers ?? 1)))));
}

export async function runSweep(sweep: CompiledSweep, o: SweepOptions = {}): Promise<SweepResult> {
  const log = o.log ?? ((line: string) => console.error(line));
  const parallel = o.parallel ?? 1;
  if (!Number.isInteger(parallel) || parallel < 1) throw new InputError(`--parallel ${parallel}: expected a whole number >= 1`);
  if (o.cluster && o.cluster.jobs.length === 0) throw new InputError('--cluster: no job name for the trials (--job)');
  if (o.cluster && parallel > o.cluster.jobs.length) {
    throw new InputError(`--parallel ${parallel} with --cluster needs ${parallel} job names (--job ${o.cluster.jobs.join(',')} gives ${o.cluster.jobs.length}): ` +
      "each running trial's coordinator takes the serving workers of one job name; start workers under more names, or lower --parallel");
  }
  checkTrials(sweep);
  const rungs = sweep.asha?.rungs ?? [undefined];
  // The cluster's job names must be valid job names: checked before anything is written.
  for (const name of o.cluster?.jobs ?? []) trialJob(sweep, trialId(0), sweep.configs[0], rungs[0], name);
  const threads = parallelThreads(o, o.cores ?? availableParallelism());
  if (threads !== o.threads) log(`[sweep] ${parallel} trials at once: ${threads} native thread${threads === '1' ? '' : 's'} per ${o.workers ? 'worker' : 'trial'} (--threads to choose)`);
  const sweepLog = await SweepLog.open(sweep.outputDir, definitionOf(sweep), o);
  const ids = sweep.configs.map((_, i) => trialId(i));
  const promoted = new Map<number, Set<string>>();
  const running = new Set<string>();

  const board = () => leaderboard(trialRows(ids, sweep.configs, sweepLog.events, running,
    (id, rung) => rung < rungs.length - 1 && promoted.has(rung) && !promoted.get(rung)!.has(id)), sweep.mode);
  // One writer: the rows are taken when the write's turn comes, so the last write shows the latest state.
  const snapshot = (status: SweepState['status']): Promise<TrialRow[]> => sweepLog.serial(async () => {
    const rows = board();
    const best = status === 'done' ? bestTrial(rows) : undefined;
    await sweepLog.writeState({
      version: 1, fingerprint: fingerprintOf(definitionOf(sweep)), definition: definitionOf(sweep), status,
      trials: rows.map((r) => ({ id: r.id, params: r.params, status: r.status, rung: r.rung, steps: r.steps, metric: r.metric })),
      best: best?.id, updated: new Date().toISOString(),
    });
    await writeSweepHtml(sweep, rows, best ?? bestTrial(rows), status);
    return rows;
  });
  const stopped = async (): Promise<SweepResult> => {
    const rows = await snapshot('interrupted');
    log(`[sweep] stopped (${String(o.stop?.reason ?? 'stop')}); continue with: ringtune sweep ${sweep.file} --resume`);
    return { board: rows, interrupted: true };
  };

  let alive = ids.map((id, i) => ({ id, params: sweep.configs[i] }));
  for (const [k, steps] of rungs.entries()) {
    const rungLabel = sweep.asha ? ` rung ${k + 1}/${rungs.length} (${steps} steps)` : '';
    let interrupted = false;
    let skipped = false;
    // Every trial of the rung runs (up to `parallel` at once) before any promotion: asha stays
    // rung-synchronous, so what continues depends on the metrics only, never on which trial finished first.
    await inLanes([...alive.entries()], parallel, async ([n, t], lane) => {
      const done = sweepLog.ended(t.id, k);
      if (done) {
        log(`[sweep] ${t.id}${rungLabel}: ${done.status} in an earlier run of this sweep (${sweep.metric} ${formatValue(done.metric)}), not run again`);
        return;
      }
      if (o.stop?.aborted) {
        skipped = true;
        return;
      }
      const dir = join(sweep.outputDir, t.id);
      const jobName = o.cluster?.jobs[lane];
      const jobFile = await writeTrialJob(dir, trialJob(sweep, t.id, t.params, steps, jobName).spec);
      await sweepLog.append({ event: 'start', trial: t.id, rung: k, steps, params: t.params, time: new Date().toISOString() });
      running.add(t.id);
      await snapshot('running');
      log(`[sweep] ${t.id} (${n + 1}/${alive.length})${rungLabel}${jobName ? ` on job ${jobName}` : ''}: ${formatParams(t.params)}`);
      const run = await runTrialProcess({
        jobFile, dir, workers: o.workers, cluster: o.cluster, backend: o.backend, threads, tag: `[${t.id}]`, log, stop: o.stop,
      }).finally(() => running.delete(t.id));
      // A trial asked to stop that finished anyway (the signal came after its last step) is recorded as finished.
      if (run.stopped && run.exitCode !== 0) {
        interrupted = true;
        await sweepLog.append({ event: 'interrupted', trial: t.id, rung: k, time: new Date().toISOString() });
        return;
      }
      const m = await readTrialMetrics(dir, sweep.metric).catch((err: Error) => ({ steps: 0, eval: undefined, curve: { train_loss: [], metric: [] }, readError: err.message }));
      const metric = m.eval?.[sweep.metric];
      const ok = run.exitCode === 0 && metric !== undefined;
      const error = ok ? undefined : run.error ?? ('readError' in m ? m.readError : `its last evaluation reports no ${sweep.metric}`);
      await sweepLog.append({
        event: 'end', trial: t.id, rung: k, status: ok ? 'done' : 'failed', params: t.params, steps: m.steps,
        metric: ok ? metric : undefined, eval: m.eval, curve: m.curve, seconds: +run.seconds.toFixed(1), error,
      });
      log(`[sweep] ${t.id}${rungLabel}: ${ok ? `${sweep.metric} ${formatValue(metric)} after ${m.steps} steps` : `failed: ${error}`} (${run.seconds.toFixed(1)} s)`);
      await snapshot('running');
    });
    if (interrupted || skipped) return stopped();
    if (k === rungs.length - 1) break;
    const results = alive.map((t) => {
      const e = sweepLog.ended(t.id, k);
      return { ...t, metric: e?.status === 'done' ? e.metric : undefined };
    });
    const next = promote(results, sweep.asha!.eta, sweep.mode);
    promoted.set(k, new Set(next.map((t) => t.id)));
    const pruned = alive.filter((t) => !promoted.get(k)!.has(t.id)).map((t) => t.id);
    if (!sweepLog.hasPromotion(k)) await sweepLog.append({ event: 'promote', rung: k, promoted: next.map((t) => t.id), pruned });
    log(`[sweep] rung ${k + 1}: ${next.map((t) => t.id).join(', ') || 'none'} continue to ${rungs[k + 1]} steps; pruned: ${pruned.join(', ') || 'none'}`);
    alive = next.map(({ id, params }) => ({ id, params }));
  }

  const rows = await snapshot('done');
  const best = bestTrial(rows);
  let bestModel: string | undefined;
  if (best) {
    bestModel = finalModelDir(join(sweep.outputDir, best.id));
    await linkBest(sweep.outputDir, best.id);
  }
  return { board: rows, best, bestModel, interrupted: false };
}

/**
 * best -> trial-NNNN/final: a relative symlink (the sweep directory can move as a whole), swapped in
 * with a rename so `best` is never missing or half-made. Copy it with `cp -rL` to keep it apart.
 */
async function linkBest(outputDir: string, id: string): Promise<void> {
  const target = join(id, 'final');
  if (!(await stat(join(outputDir, target)).then((s) => s.isDirectory(), () => false))) {
    throw new RingtuneError(`${join(outputDir, target)}: the best trial's final model is missing`);
  }
  const link = join(outputDir, SWEEP_NAMES.best);
  const tmp = join(outputDir, `.${SWEEP_NAMES.best}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new RingtuneError(`${link}: cannot replace it with a link to ${target} (${(err as Error).message}); move it away and run the sweep again with --resume`, { cause: err });
  }
}
