/**
 * The line in front of the model: one model per process and tfjs is single-threaded, so requests run
 * one at a time in arrival order, and at most `maxWaiting` may wait behind the one running.
 *
 *   1. run(job, signal): a full line throws QueueFullError at once (the caller answers 503 with
 *      Retry-After = retryAfterSeconds()); otherwise the request takes the last place.
 *   2. A request whose signal aborts while it waits (its client went away) leaves the line at once,
 *      freeing its place, and rejects with RequestCancelledError: its job never runs.
 *   3. When the running job settles, the first waiting one starts. A job is given the signal so it can
 *      stop early (generation checks it between tokens); the queue itself never interrupts a job.
 *
 * Knows nothing of HTTP: the server turns a closed connection into the signal.
 */
import { RingtuneError } from '../errors.ts';

/** The line already holds `limit` waiting requests. */
export class QueueFullError extends RingtuneError {
  override readonly name: string = 'QueueFullError';
  constructor(readonly limit: number, readonly retryAfterSeconds: number) {
    super(`server busy: ${limit} requests are already waiting (--max-queue ${limit}); retry after ${retryAfterSeconds} s`);
  }
}

/** The request was withdrawn (its signal aborted) before its turn came; its job did not run. */
export class RequestCancelledError extends RingtuneError {
  override readonly name: string = 'RequestCancelledError';
  constructor() {
    super('request cancelled while queued: the client went away');
  }
}

interface Waiting {
  start(): void;
  onAbort(): void;
}

/** Weight of the newest run in the running mean of job time that Retry-After is based on. */
const MEAN_WEIGHT = 0.2;

export class RequestQueue {
  private readonly line: Waiting[] = [];
  private busy = false;
  private meanRunSeconds: number | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly maxWaiting: number) {}

  /** Requests waiting behind the running one (the running one not counted). */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * Seconds a rejected client should wait: a place frees when the running job ends, which takes about
   * one job's time (running mean, at least 1 s).
   */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.meanRunSeconds ?? 0));
  }

  run<T>(job: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(new RequestCancelledError());
    if (this.busy && this.line.length >= this.maxWaiting) {
      return Promise.reject(new QueueFullError(this.maxWaiting, this.retryAfterSeconds()));
    }
    return new Promise<T>((resolve, reject) => {
      const execute = () => {
        const t0 = performance.now();
        Promise.resolve()
          .then(() => job(signal))
          .then(resolve, reject)
          .finally(() => {
            const seconds = (performance.now() - t0) / 1000;
            this.meanRunSeconds = this.meanRunSeconds === undefined ? seconds : MEAN_WEIGHT * seconds + (1 - MEAN_WEIGHT) * this.meanRunSeconds;
            this.next();
          });
      };
      if (!this.busy) {
        this.busy = true;
        return execute();
      }
      const entry: Waiting = {
        start: () => {
          signal.removeEventListener('abort', entry.onAbort);
          execute();
        },
        onAbort: () => {
          this.line.splice(this.line.indexOf(entry), 1);
          reject(new RequestCancelledError());
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.line.push(entry);
    });
  }

  /** Resolves once nothing runs and nothing waits (server shutdown waits for this before freeing the model). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private next(): void {
    const entry = this.line.shift();
    if (entry) return entry.start();
    this.busy = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
