/**
 * One stripe of a striped ring link (stripes.ts) in its own worker thread: the main-thread handle.
 * The thread (stripe-thread-main.ts, booted through src/worker/thread-boot.mjs) holds an ordinary
 * GrpcRing for stripe k, on port listenPort + k, and reduces its slices of the gradient in place in a
 * SharedArrayBuffer the main thread shares with it: no copy between threads.
 *
 *   main (GrpcRing, stripe 0)                 thread k (GrpcRing, stripe k)
 *   StripeThread.start(options, epoch, k) --> GrpcRing.create(stripe k)           <-- {ready: address}
 *   connect(peers)                        --> ring.connect(peers)  (maps to port+k) <-- {id, ok}
 *   allReduce(sharedBuf, o) / broadcast   --> ring.allReduce(sharedBuf, o)        <-- {id, ok} | {id, error}
 *   abort(err)                            --> the ring fails with err (its abort goes down its links)
 *                                         <-- {broken: err}  (its links failed between calls)
 *   close()                               --> ring.close(), thread exits          <-- {id, ok}
 *
 * Errors cross the thread boundary as WireError and are rebuilt as the same class with the same
 * fields (a PeerLostError from stripe 2 names the same rank as it would on stripe 0).
 */
import { Worker } from 'node:worker_threads';
import { InputError, RingtuneError } from '../errors.ts';
import type { CodecName } from './codecs.ts';
import { CollectiveTimeoutError, PeerLostError, RingClosedError, RingConnectError, RingProtocolError } from './errors.ts';
import type { ReduceOp } from './ring-allreduce.ts';
import type { GrpcRingOptions } from './ring-options.ts';

export interface StripeThreadData {
  entry: string;
  options: GrpcRingOptions;
  epoch: number;
  stripe: number;
  /** The main thread's choice of ring kernels and placed copies (kernels.ts, ring-allreduce.ts), for A/Bs. */
  nativeKernels: boolean;
  placedCopies: boolean;
}

export type StripeCall =
  | { connect: string[] }
  | { allReduce: { buf: Float32Array; step: number; op: ReduceOp; codec: CodecName; timeoutMs: number; exactTail: number } }
  | { broadcast: { buf: Float32Array; step: number; root: number; timeoutMs: number } }
  | { close: true };
export type ToStripe = { id: number; call: StripeCall } | { abort: WireError };
export type FromStripe = { ready: string } | { id: number; ok: true } | { id: number; error: WireError } | { broken: WireError } | { startError: WireError };

/** An error as it crosses a thread: class name, message and its own primitive fields (rank, step, ...). */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, string | number | boolean | null>;
}

const ERROR_CLASSES: Record<string, { prototype: object }> = {
  PeerLostError, CollectiveTimeoutError, RingConnectError, RingProtocolError, RingClosedError, InputError, RingtuneError,
};

export function toWireError(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  const fields: WireError['fields'] = {};
  for (const [k, v] of Object.entries(e)) {
    if (k !== 'name' && k !== 'message' && k !== 'stack' && (v === null || ['string', 'number', 'boolean'].includes(typeof v))) fields[k] = v as string | number | boolean | null;
  }
  return { name: e.name, message: e.message, stack: e.stack, fields };
}

/** The same class (instanceof works) with the same name, message and fields. */
export function fromWireError(w: WireError): Error {
  const proto = ERROR_CLASSES[w.name]?.prototype ?? Error.prototype;
  return Object.assign(Object.create(proto) as Error, { ...w.fields, name: w.name, message: w.message, stack: w.stack });
}

export class StripeThread {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private exited: Error | null = null;
  private closing = false;

  private constructor(
    private readonly thread: Worker,
    readonly stripe: number,
    readonly address: string,
    onBroken: (err: Error) => void,
  ) {
    thread.on('message', (m: FromStripe) => {
      if ('broken' in m) return onBroken(fromWireError(m.broken));
      if (!('id' in m)) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if ('error' in m) p?.reject(fromWireError(m.error));
      else p?.resolve();
    });
    const gone = (err: Error) => {
      this.exited = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      if (!this.closing) onBroken(err);
    };
    thread.on('error', (e) => gone(new RingtuneError(`ring stripe ${stripe} thread failed: ${e.message}`, { cause: e })));
    thread.on('exit', (code) => gone(new RingClosedError(`ring stripe ${stripe} thread exited (code ${code})`)));
  }

  /** Starts the thread; resolves once its ring listens (rejects with the ring's error, e.g. EADDRINUSE). */
  static start(data: Omit<StripeThreadData, 'entry'>, onBroken: (err: Error) => void): Promise<StripeThread> {
    const workerData: StripeThreadData = { ...data, entry: new URL('./stripe-thread-main.ts', import.meta.url).href };
    const thread = new Worker(new URL('../worker/thread-boot.mjs', import.meta.url), { workerData, name: `ringtune-ring-stripe-${data.stripe}` });
    return new Promise((resolve, reject) => {
      const first = (m: FromStripe) => {
        thread.off('error', failed);
        if ('ready' in m) resolve(new StripeThread(thread, data.stripe, m.ready, onBroken));
        else {
          reject('startError' in m ? fromWireError(m.startError) : new RingtuneError(`ring stripe ${data.stripe}: unexpected first message`));
          void thread.terminate();
        }
      };
      const failed = (e: Error) => reject(new RingtuneError(`ring stripe ${data.stripe} thread failed to start: ${e.message}`, { cause: e }));
      thread.once('message', first);
      thread.once('error', failed);
    });
  }

  connect(peers: readonly string[]): Promise<void> {
    return this.call({ connect: [...peers] });
  }

  allReduce(buf: Float32Array, o: { step: number; op: ReduceOp; codec: CodecName; timeoutMs: number; exactTail: number }): Promise<void> {
    return this.call({ allReduce: { buf, ...o } });
  }

  broadcast(buf: Float32Array, o: { step: number; root: number; timeoutMs: number }): Promise<void> {
    return this.call({ broadcast: { buf, ...o } });
  }

  /** Fails the stripe's ring with `err` (its pending call rejects; its neighbours get an abort naming err's rank). */
  abort(err: Error): void {
    if (!this.exited) this.thread.postMessage({ abort: toWireError(err) } satisfies ToStripe);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (!this.exited) await this.call({ close: true }).catch(() => {});
    await this.thread.terminate();
  }

  private call(call: StripeCall): Promise<void> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ id, call } satisfies ToStripe);
    });
  }
}
