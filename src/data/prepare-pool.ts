/**
 * Runs prepare-chunk.ts over blocks on `threads` worker threads (each with its own tokenizer: the
 * tokenizer is pure JS and single-threaded, so cores scale it), or in this thread when threads is 0.
 * Results come back in submission order whatever thread finishes first; `window` blocks are in flight
 * at most, which bounds memory to window x block size.
 */
import { Worker } from 'node:worker_threads';
import { InputError, RingtuneError } from '../errors.ts';
import type { Tokenizer, TokenizerEngine } from '../model/tokenizer.ts';
import { ChunkBuilder, type ChunkInput, type ChunkOutput, type ChunkSpec } from './prepare-chunk.ts';

export interface ChunkPool {
  /** Queues a block; the promise resolves with its examples. */
  run(file: string, input: ChunkInput): Promise<ChunkOutput>;
  close(): Promise<void>;
  readonly threads: number;
}

export async function chunkPool(modelDir: string, tok: Tokenizer, spec: ChunkSpec, threads: number): Promise<ChunkPool> {
  if (threads <= 0) {
    const builder = new ChunkBuilder(spec, tok);
    return {
      threads: 0,
      // setImmediate first: a long preparation leaves the event loop room (heartbeats, progress).
      run: async (file, input) => { await new Promise<void>((r) => setImmediate(r)); return builder.build(file, input); },
      close: async () => undefined,
    };
  }
  return ThreadPool.start(modelDir, spec, threads, tok.engineOption);
}

interface Job { id: number; file: string; input: ChunkInput; resolve: (o: ChunkOutput) => void; reject: (e: Error) => void }

class ThreadPool implements ChunkPool {
  private nextId = 0;
  private readonly queue: Job[] = [];
  private readonly busy = new Map<Worker, Job>();
  private failed?: Error;

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on('message', (m: { id: number; out?: ChunkOutput; error?: { name: string; message: string } }) => this.done(w, m));
      w.on('error', (err) => this.fail(new RingtuneError(`a data preparation thread failed: ${err.message}`, { cause: err })));
    }
  }

  get threads(): number {
    return this.workers.length;
  }

  /** `engine`: the tokenizer engine the caller's tokenizer was loaded with, so every thread encodes alike. */
  static async start(modelDir: string, spec: ChunkSpec, threads: number, engine: TokenizerEngine): Promise<ThreadPool> {
    const entry = new URL('./prepare-thread.ts', import.meta.url).href;
    const workers = [...Array(threads)].map((_, i) => new Worker(new URL('../worker/thread-boot.mjs', import.meta.url), {
      workerData: { entry, modelDir, spec, engine }, name: `ringtune-prepare-${i}`,
    }));
    try {
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        const onExit = (code: number) => reject(new RingtuneError(`a data preparation thread exited (code ${code}) while loading the tokenizer`));
        w.once('error', reject);
        w.once('exit', onExit);
        w.once('message', () => {
          // Only our own listeners: a Worker's removeAllListeners also stops its message port.
          w.off('error', reject);
          w.off('exit', onExit);
          resolve();
        });
      })));
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new ThreadPool(workers);
  }

  run(file: string, input: ChunkInput): Promise<ChunkOutput> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, file, input, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (this.queue.length === 0) return;
      if (this.busy.has(w)) continue;
      const job = this.queue.shift()!;
      this.busy.set(w, job);
      const transfer = job.input.kind === 'lines' && (job.input.owned || ownsBuffer(job.input.bytes)) ? [job.input.bytes.buffer as ArrayBuffer] : [];
      w.postMessage({ id: job.id, file: job.file, input: job.input }, transfer);
    }
  }

  private done(w: Worker, m: { id: number; out?: ChunkOutput; error?: { name: string; message: string } }): void {
    const job = this.busy.get(w);
    this.busy.delete(w);
    if (job) {
      // Errors a record can cause (a chat template that fails to render) are the user's input errors.
      if (m.error) job.reject(m.error.name === 'InputError' || m.error.name === 'DataError' ? new InputError(m.error.message) : new RingtuneError(m.error.message));
      else job.resolve(m.out!);
    }
    this.dispatch();
  }

  private fail(err: Error): void {
    this.failed = err;
    for (const j of [...this.queue, ...this.busy.values()]) j.reject(err);
    this.queue.length = 0;
    this.busy.clear();
  }
}

/** Transfer only a view that is its whole buffer: a pooled Buffer shares its ArrayBuffer with others. */
function ownsBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer;
}
