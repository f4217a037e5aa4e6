/**
 * The stripe threads of a striped ring (stripes.ts): stripes 1..K-1, each a StripeThread, while
 * stripe 0 runs on the calling thread in GrpcRing itself (that thread only waits during a collective,
 * so one fewer isolate does the same work). Holds the SharedArrayBuffer the stripes reduce in: a
 * gradient that is not already in shared memory is copied in before and out after each collective,
 * into a buffer allocated once and grown when a longer one comes (`copy` counts what that costs).
 */
import { ringKernels } from './kernels.ts';
import { placedCopiesOn } from './ring-allreduce.ts';
import type { GrpcRingOptions } from './ring-options.ts';
import { StripeThread } from './stripe-thread.ts';

export class StripeGroup {
  private shared: Float32Array | null = null;
  /** Copies into and out of the shared buffer: collectives that needed one, their seconds and bytes (both ways). */
  readonly copy = { collectives: 0, seconds: 0, bytes: 0 };

  private constructor(private readonly threads: StripeThread[]) {}

  /**
   * Starts stripes 1..stripes-1 of a ring whose stripe 0 listens on `basePort` (stripe k on basePort + k).
   * Rejects with the first stripe's error (e.g. EADDRINUSE) after stopping the others.
   */
  static async start(
    o: { options: GrpcRingOptions; epoch: number; basePort: number; stripes: number },
    onBroken: (err: Error) => void,
  ): Promise<StripeGroup> {
    const started = await Promise.allSettled(
      Array.from({ length: o.stripes - 1 }, (_, i) =>
        StripeThread.start(
          { options: { ...o.options, listenPort: o.basePort + i + 1 }, epoch: o.epoch, stripe: i + 1, nativeKernels: ringKernels() !== null, placedCopies: placedCopiesOn() },
          onBroken,
        ),
      ),
    );
    const threads = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      await Promise.all(threads.map((t) => t.close()));
      throw failed.reason;
    }
    return new StripeGroup(threads);
  }

  /** Connects every stripe thread's ring (each maps the addresses to its own ports). */
  connect(peers: readonly string[]): Promise<void>[] {
    return this.threads.map((t) => t.connect(peers));
  }

  /**
   * One collective over all stripes: `own` runs stripe 0 here, `each` starts it in a thread, all on the
   * same shared memory. The first failure is handed to `onError` at once (which fails the other stripes
   * with it); this waits for every stripe to settle, so no thread writes into the buffer after return.
   */
  async run(
    buf: Float32Array,
    own: (shared: Float32Array) => Promise<void>,
    each: (t: StripeThread, shared: Float32Array) => Promise<void>,
    onError: (err: Error) => void,
  ): Promise<void> {
    const shared = this.sharedView(buf);
    const failFast = (p: Promise<void>) => p.catch((err: Error) => (onError(err), Promise.reject(err)));
    const results = await Promise.allSettled([failFast(own(shared)), ...this.threads.map((t) => failFast(each(t, shared)))]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (shared !== buf) this.timedCopy(buf, shared, buf.byteLength);
  }

  abort(err: Error): void {
    for (const t of this.threads) t.abort(err);
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.close()));
  }

  /** `buf` itself when its memory is shared, else the shared buffer with `buf`'s values copied in. */
  private sharedView(buf: Float32Array): Float32Array {
    if (buf.buffer instanceof SharedArrayBuffer) return buf;
    if (!this.shared || this.shared.length < buf.length) this.shared = new Float32Array(new SharedArrayBuffer(4 * buf.length));
    const view = this.shared.subarray(0, buf.length);
    this.copy.collectives++;
    this.timedCopy(view, buf, buf.byteLength);
    return view;
  }

  private timedCopy(dst: Float32Array, src: Float32Array, bytes: number): void {
    const t0 = performance.now();
    dst.set(src);
    this.copy.seconds += (performance.now() - t0) / 1000;
    this.copy.bytes += bytes;
  }
}
