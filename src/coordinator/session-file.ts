/**
 * What a restarted coordinator needs to take over a running job and cannot ask its workers for: the
 * session's run id (the one every control message names; a resumed run's differs from its
 * checkpoints'), the ring epoch and members, and the numbers the workers sent once in Ready.
 * `coordinator-session.json` in the checkpoint directory, written (temp-then-rename) when training
 * starts and at every ring re-form by a coordinator started with --resume-if-present, removed when
 * its run ends (done, failed or stopped). A file left behind means its coordinator was killed:
 * recovery.ts looks for that run's live workers.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const SESSION_FILE = 'coordinator-session.json';

export interface CoordinatorSession {
  job: string;
  runId: string;
  /** The ring epoch training runs in, and its members by worker id in rank order. */
  epoch: number;
  workers: string[];
  totalSteps: number;
  data: { train: number; eval: number };
  labels: string[];
}

export class SessionFile {
  readonly file: string;
  /** Writes in the order they were asked for (handlers run synchronously; files do not). */
  private chain: Promise<void> = Promise.resolve();

  constructor(checkpointDir: string) {
    this.file = join(checkpointDir, SESSION_FILE);
  }

  /** The session a killed coordinator of job `job` left, or undefined when there is none. */
  async read(job: string): Promise<CoordinatorSession | undefined> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text === undefined) return undefined;
    let s: Partial<CoordinatorSession>;
    try {
      s = JSON.parse(text) as Partial<CoordinatorSession>;
    } catch (err) {
      throw new InputError(`${this.file}: not JSON (${(err as Error).message}); it is the session of a killed coordinator: remove it to start without recovery`);
    }
    if (typeof s.runId !== 'string' || !s.runId || !Array.isArray(s.workers) || typeof s.epoch !== 'number' || typeof s.totalSteps !== 'number') {
      throw new InputError(`${this.file}: expected {job, runId, epoch, workers, totalSteps, data, labels}; remove it to start without recovery`);
    }
    if (s.job !== job) return undefined; // owner.json guards the directory; a stale file of a renamed job recovers nothing
    return { job, runId: s.runId, epoch: s.epoch, workers: s.workers.map(String), totalSteps: s.totalSteps, data: s.data ?? { train: 0, eval: 0 }, labels: s.labels ?? [] };
  }

  save(s: CoordinatorSession): Promise<void> {
    const write = this.chain.then(() => writeFileAtomic(this.file, JSON.stringify(s) + '\n'));
    this.chain = write.catch(() => {}); // a failed write must not stop the later ones
    return write;
  }

  /** The run ended: nothing is left to recover. */
  async remove(): Promise<void> {
    await this.chain.catch(() => {});
    await rm(this.file, { force: true });
  }
}
