/**
 * bench/allreduce.ts --ring-thread worker: the rank's GrpcRing runs in a worker thread and reduces a
 * gradient that lives in a SharedArrayBuffer; the main thread only posts "reduce step s" and waits.
 * Measures what issue 14 asks ("the reduction off the main thread ... measure both"): the same
 * collective's time, CPU and the main thread's event-loop delay, against the ring on the main thread.
 *
 * Main thread                          ring thread (this file, loaded through src/worker/thread-boot.mjs)
 *   startRingThread(options) ------->   GrpcRing.create(options)      <--- {address}
 *   connect(peers)           ------->   ring.connect(peers)           <--- {connected}
 *   allReduce(shared buf, s) ------->   ring.allReduce(buf, s) (in place, same memory)  <--- {done}
 *   close()                  ------->   ring.close(), thread exits
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { GrpcRing } from '../src/collective/grpc-ring.ts';
import type { CodecName } from '../src/collective/codecs.ts';
import { useNativeRingKernels } from '../src/collective/kernels.ts';
import type { GrpcRingOptions } from '../src/collective/ring-options.ts';
import type { BenchRing } from './allreduce.ts';

type ToThread =
  | { connect: string[] }
  | { reduce: { buf: Float32Array; step: number; codec: CodecName } }
  | { close: true };
type FromThread = { address: string } | { connected: true } | { done: true } | { closed: true } | { error: string };

interface ThreadData {
  entry: string;
  options: GrpcRingOptions;
  kernels: 'native' | 'js';
}

/** Starts the ring thread; resolves once its ring listens. */
export async function startRingThread(options: GrpcRingOptions, kernels: 'native' | 'js'): Promise<BenchRing> {
  const data: ThreadData = { entry: import.meta.url, options, kernels };
  const thread = new Worker(new URL('../src/worker/thread-boot.mjs', import.meta.url), { workerData: data, name: 'ringtune-ring' });
  let pending: { resolve: (m: FromThread) => void; reject: (e: Error) => void } | null = null;
  thread.on('message', (m: FromThread) => {
    const p = pending;
    pending = null;
    if ('error' in m) p?.reject(new Error(`ring thread: ${m.error}`));
    else p?.resolve(m);
  });
  thread.on('error', (e) => pending?.reject(e));
  const call = (m: ToThread | null): Promise<FromThread> =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      if (m) thread.postMessage(m);
    });
  const first = await call(null);
  if (!('address' in first)) throw new Error('ring thread did not report its address');
  return {
    address: first.address,
    connect: async (peers) => void (await call({ connect: peers })),
    alloc: (n) => new Float32Array(new SharedArrayBuffer(4 * n)),
    allReduce: async (buf, o) => void (await call({ reduce: { buf, ...o } })),
    close: async () => {
      await call({ close: true });
      await thread.terminate();
    },
  };
}

async function runThread(): Promise<void> {
  const d = workerData as ThreadData;
  if (d.kernels === 'js') useNativeRingKernels(false);
  const port = parentPort!;
  const ring = await GrpcRing.create(d.options);
  const reply = (m: FromThread) => port.postMessage(m);
  port.on('message', (m: ToThread) => {
    const run = async (): Promise<FromThread> => {
      if ('connect' in m) return (await ring.connect(m.connect), { connected: true });
      if ('reduce' in m) {
        const { buf, step, codec } = m.reduce;
        return (await ring.allReduce(buf, { step, codec, op: 'sum', timeoutMs: 120_000 }), { done: true });
      }
      await ring.close();
      return { closed: true };
    };
    run().then(
      (r) => {
        reply(r);
        if ('closed' in r) port.close();
      },
      (e: Error) => reply({ error: e.message }),
    );
  });
  reply({ address: ring.address });
}

if (!isMainThread && (workerData as ThreadData | undefined)?.entry === import.meta.url) await runThread();
