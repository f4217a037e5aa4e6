/**
 * What a sweep leaves in its output directory besides the trials' run directories:
 *   sweep.jsonl       append-only log, one JSON line per event: a trial (rung) started, ended (status,
 *                     metric, final evaluation, curves), was interrupted; a rung's promotions (asha)
 *   sweep-state.json  the sweep's definition (fingerprinted), every trial's params and latest status,
 *                     the best trial; replaced whole (temp file + rename) after every event
 *   sweep.html        the leaderboard with curves (sweep-html.ts); best -> trial-NNNN/final (symlink)
 * Resuming: the state file says which sweep this is (a changed SWEEP.yaml or base job is refused);
 * sweep.jsonl says what ran: a trial rung with an `end` line is never run again. A last line cut
 * short by a crash is dropped, as in metrics.jsonl (run/history.ts).
 * Claiming the directory follows checkpoint-dir.ts: a fresh sweep refuses a directory holding a sweep,
 * --overwrite removes only the names listed here (and trial-NNNN), --resume needs a state file.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, RingtuneError } from '../errors.ts';
import { readRecordLines, reviveNumber, stringifyRecord } from '../run/record-json.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { Params } from './space.ts';

export const SWEEP_NAMES = { log: 'sweep.jsonl', state: 'sweep-state.json', html: 'sweep.html', best: 'best' } as const;
const TRIAL_DIR = /^trial-\d{4,}$/;
/** Staging files of util/atomic.ts beside our names: `.sweep-state.json.tmp-<pid>-<hex>`. */
const STAGING = /^\.(sweep-state\.json|sweep\.html|best)\.tmp-/;

/** A trial's curves: [step, value] pairs, finite values only. */
export interface Curves {
  train_loss: Array<[number, number]>;
  /** The sweep's metric at each evaluation. */
  metric: Array<[number, number]>;
}

/** interrupted: a rung started and did not end (Ctrl-C, a crash); --resume runs it again from its checkpoint. */
export type TrialStatus = 'pending' | 'running' | 'interrupted' | 'done' | 'failed' | 'pruned';

export type SweepEvent =
  | { event: 'start'; trial: string; rung: number; steps?: number; params: Params; time: string }
  | {
    event: 'end'; trial: string; rung: number; status: 'done' | 'failed'; params: Params; steps: number;
    /** The sweep's metric at the trial's last evaluation; absent when it failed. */
    metric?: number; eval?: Record<string, number>; curve: Curves; seconds: number; error?: string;
  }
  | { event: 'interrupted'; trial: string; rung: number; time: string }
  | { event: 'promote'; rung: number; promoted: string[]; pruned: string[] };

export type EndEvent = Extract<SweepEvent, { event: 'end' }>;

export interface SweepState {
  version: 1;
  fingerprint: string;
  /** What the fingerprint covers: strategy, seed, metric, mode, rungs, space, base job, configurations. */
  definition: Record<string, unknown>;
  status: 'running' | 'interrupted' | 'done';
  trials: Array<{ id: string; params: Params; status: TrialStatus; rung?: number; steps?: number; metric?: number }>;
  best?: string;
  updated: string;
}

/** JSON with object keys sorted, so equal definitions hash equally whatever order YAML gave. */
function canonical(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(canonical);
  if (typeof x === 'object' && x !== null) return Object.fromEntries(Object.keys(x).sort().map((k) => [k, canonical((x as Record<string, unknown>)[k])]));
  return x;
}

export const fingerprintOf = (definition: Record<string, unknown>): string =>
  createHash('sha256').update(JSON.stringify(canonical(definition))).digest('hex').slice(0, 16);

const listDir = (dir: string) => readdir(dir).catch((err: NodeJS.ErrnoException) => {
  if (err.code === 'ENOENT') return [] as string[];
  throw err;
});

export class SweepLog {
  /** Appends and state writes in call order, one at a time: trials running at once share this one writer. */
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(readonly dir: string, readonly events: SweepEvent[]) {}

  /** Runs `fn` after every write queued before it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Claims `dir` for the sweep with `definition`: fresh (refusing a directory that holds a sweep),
   * --overwrite (removing the old sweep's files and trials) or --resume (same definition required).
   */
  static async open(dir: string, definition: Record<string, unknown>, o: { resume?: boolean; overwrite?: boolean }): Promise<SweepLog> {
    if (o.resume && o.overwrite) throw new InputError('--resume continues the sweep in the output directory and --overwrite starts over: pass one of them');
    const entries = await listDir(dir);
    const held = entries.filter((f) => TRIAL_DIR.test(f) || (Object.values(SWEEP_NAMES) as string[]).includes(f)).sort();
    if (!o.resume && !o.overwrite && held.length) {
      const shown = held.length > 8 ? [...held.slice(0, 6), '...'] : held;
      throw new InputError(`${dir} already holds a sweep (${shown.join(', ')}): pass --resume to continue it, --overwrite to start over (its trials are removed), or --output DIR`);
    }
    if (o.overwrite) for (const f of [...held, ...entries.filter((f) => STAGING.test(f))]) await rm(join(dir, f), { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    if (!o.resume) return new SweepLog(dir, []);
    const stateFile = join(dir, SWEEP_NAMES.state);
    const text = await readFile(stateFile, 'utf8').catch(() => undefined);
    if (text === undefined) throw new InputError(`--resume: no sweep in ${dir} (${SWEEP_NAMES.state} is missing); start it without --resume`);
    let state: SweepState;
    try {
      state = JSON.parse(text) as SweepState;
    } catch (err) {
      throw new RingtuneError(`${stateFile}: unreadable (${(err as Error).message}); start over with --overwrite`);
    }
    if (state.fingerprint !== fingerprintOf(definition)) {
      const old = state.definition ?? {};
      const changed = Object.keys({ ...old, ...definition }).filter((k) => JSON.stringify(canonical(old[k])) !== JSON.stringify(canonical(definition[k])));
      throw new InputError(`--resume: the sweep in ${dir} was started with a different definition (changed: ${changed.join(', ') || 'unknown'}); ` +
        'restore the sweep file and base job, or start over with --overwrite or --output DIR');
    }
    return new SweepLog(dir, await readEvents(join(dir, SWEEP_NAMES.log)));
  }

  /** In memory at once (what later decisions read), on disk in call order. */
  append(e: SweepEvent): Promise<void> {
    this.events.push(e);
    return this.serial(() => appendFile(join(this.dir, SWEEP_NAMES.log), stringifyRecord(e) + '\n'));
  }

  /** Call inside serial() with a state made there, so a later state is never overwritten by an earlier one. */
  async writeState(state: SweepState): Promise<void> {
    await writeFileAtomic(join(this.dir, SWEEP_NAMES.state), stringifyRecord(state, 2) + '\n');
  }

  /** The `end` event of a trial's rung, if that rung finished (the last one logged wins). */
  ended(trial: string, rung: number): EndEvent | undefined {
    return this.events.filter((e): e is EndEvent => e.event === 'end' && e.trial === trial && e.rung === rung).at(-1);
  }

  hasPromotion(rung: number): boolean {
    return this.events.some((e) => e.event === 'promote' && e.rung === rung);
  }
}

/** The events of a sweep.jsonl; a missing file has none, a cut-short last line is dropped, other bad lines name file:line. */
export async function readEvents(file: string): Promise<SweepEvent[]> {
  return readRecordLines(file, parseEvent, 'a sweep event', 'fix or remove that line, or start over with --overwrite');
}

function parseEvent(line: string): SweepEvent {
  const e = JSON.parse(line) as SweepEvent;
  if (e.event === 'end') {
    // Non-finite numbers were written as strings (run/record-json.ts): a diverged trial's metric.
    if (e.metric !== undefined) e.metric = reviveNumber(e.metric) as number;
    if (e.eval) e.eval = Object.fromEntries(Object.entries(e.eval).map(([k, v]) => [k, reviveNumber(v) as number]));
  }
  return e;
}
