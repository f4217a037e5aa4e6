/**
 * The `native` tfjs backend: tfjs-backend-cpu's tensor storage (plain typed arrays, outside any wasm
 * heap, so no 4 GB cap) with a buffer pool, every cpu kernel registered as a fallback, and the
 * native kernels of `kernels.ts` (C++ over OpenBLAS, native/src) registered over them.
 *
 * Why a pool: a fresh page costs ~15 us on first touch here (notes/machine-perf.md), and a training
 * step allocates the same shapes every time. Float32 outputs of native kernels come from free lists
 * keyed by length and go back when their tensor is disposed. Reads (dataSync/data) return copies, so
 * no caller holds a pooled buffer; a fallback kernel returning a view of one (cpu Slice does) *pins*
 * it, and pinned buffers are left to the GC.
 * Pooled buffers hold stale values: a native kernel must write every element of its outputs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { RingtuneError } from '../../errors.ts';
import type { NativeAddon } from './addon.ts';

export class NativeOutOfMemoryError extends RingtuneError {
  override readonly name = 'NativeOutOfMemoryError';
}

export class NativeKernelError extends RingtuneError {
  override readonly name = 'NativeKernelError';
}

/** Free lists of Float32Arrays keyed by element count, plus the set of buffers it may recycle. */
export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly owned = new WeakSet<ArrayBufferLike>();
  /** Bytes in buffers handed out and still recyclable (i.e. held by live tensors). */
  liveBytes = 0;
  freeBytes = 0;
  allocations = 0;
  reuses = 0;

  constructor(private readonly maxFreeBytes: number) {}

  alloc(n: number, what: string): Float32Array {
    const list = this.free.get(n);
    const reused = list?.pop();
    let a: Float32Array;
    if (reused) {
      this.freeBytes -= reused.byteLength;
      this.reuses++;
      a = reused;
    } else {
      try {
        a = new Float32Array(n);
      } catch (err) {
        throw new NativeOutOfMemoryError(
          `cannot allocate ${(n * 4 / 2 ** 20).toFixed(1)} MiB for ${what} (${n} float32 values): ${(err as Error).message}. ` +
            'Use a smaller micro_batch or max_seq_len, or a machine with more memory.', { cause: err });
      }
      this.allocations++;
    }
    this.owned.add(a.buffer);
    this.liveBytes += a.byteLength;
    return a;
  }

  isOwned(a: unknown): a is Float32Array {
    return a instanceof Float32Array && this.owned.has(a.buffer);
  }

  /** Stops recycling a buffer someone outside the backend may hold. */
  pin(a: unknown): void {
    if (this.isOwned(a)) {
      this.owned.delete(a.buffer);
      this.liveBytes -= a.buffer.byteLength;
    }
  }

  release(a: unknown): void {
    if (!this.isOwned(a)) return;
    this.owned.delete(a.buffer);
    this.liveBytes -= a.byteLength;
    if (this.freeBytes + a.byteLength > this.maxFreeBytes) return; // let the GC have it
    let list = this.free.get(a.length);
    if (!list) this.free.set(a.length, (list = []));
    list.push(a);
    this.freeBytes += a.byteLength;
  }

}

type Data = { values?: unknown; dtype: tf.DataType; refCount: number };

export class NativeBackend extends MathBackendCPU {
  readonly pool: BufferPool;
  /** > 0 while a fallback kernel runs: its reads are in place, not copies. */
  kernelDepth = 0;

  constructor(readonly addon: NativeAddon, maxFreeBytes = 8 * 2 ** 30) {
    super();
    this.pool = new BufferPool(maxFreeBytes);
    // tfjs-backend-cpu prints an advert for tfjs-node on its first write; this backend is the answer to it.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  private entry(dataId: object): Data | undefined {
    return (this.data as unknown as { has(d: object): boolean; get(d: object): Data }).has(dataId)
      ? (this.data as unknown as { get(d: object): Data }).get(dataId)
      : undefined;
  }

  /** A tensor's stored values (any typed array), read in place. */
  valuesOf(t: tf.TensorInfo): unknown {
    return this.entry(t.dataId)?.values;
  }

  /**
   * Runs a tfjs-backend-cpu kernel function on this backend: reads inside it do not copy, and an output
   * that is a new tensor over a pooled buffer (cpu Slice returns views) is pinned, never recycled.
   */
  runFallback(kernelFunc: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
    this.kernelDepth++;
    let r: tf.TensorInfo | tf.TensorInfo[];
    try {
      r = kernelFunc(args) as tf.TensorInfo | tf.TensorInfo[];
    } finally {
      this.kernelDepth--;
    }
    const inputIds = new Set(Object.values(args.inputs).map((t) => t?.dataId));
    for (const o of Array.isArray(r) ? r : [r]) {
      if (!inputIds.has(o.dataId)) this.pool.pin(this.valuesOf(o));
    }
    return r;
  }

  /** The float32 values of a tensor, for a kernel's input. */
  f32(t: tf.TensorInfo, kernel: string): Float32Array {
    const v = this.valuesOf(t);
    if (!(v instanceof Float32Array)) {
      throw new NativeKernelError(`native kernel ${kernel}: expected a float32 input, got ${t.dtype} of shape [${t.shape}]`);
    }
    return v;
  }

  i32(t: tf.TensorInfo, kernel: string): Int32Array {
    const v = this.valuesOf(t);
    if (!(v instanceof Int32Array)) {
      throw new NativeKernelError(`native kernel ${kernel}: expected an int32 input, got ${t.dtype} of shape [${t.shape}]`);
    }
    return v;
  }

  /** A pooled output buffer; the kernel must write all of it. */
  alloc(n: number, what: string): Float32Array {
    return this.pool.alloc(n, what);
  }

  /** Wraps a pooled buffer as a kernel output. */
  out(shape: number[], values: Float32Array): tf.TensorInfo {
    return this.makeTensorInfo(shape, 'float32', values);
  }

  /**
   * Outside kernels, reads return a copy (as the wasm backend does): buffers are recycled and variables
   * are updated in place (flat-params), so a caller's array must be a snapshot. Kernels read in place.
   */
  override readSync(dataId: object): tf.backend_util.BackendValues {
    const values = super.readSync(dataId);
    if (this.kernelDepth > 0) return values;
    return ArrayBuffer.isView(values) ? (values as Float32Array).slice() : values;
  }

  override disposeData(dataId: object, force = false): boolean {
    const e = this.entry(dataId);
    const done = super.disposeData(dataId, force);
    if (e && done && !this.entry(dataId)) this.pool.release(e.values);
    return done;
  }

  /** Makes `values` (same length, caller-owned) the storage of `dataId`; its old buffer returns to the pool. */
  rebind(dataId: object, values: Float32Array): void {
    const e = this.entry(dataId);
    if (!(e?.values instanceof Float32Array) || e.values.length !== values.length) {
      throw new NativeKernelError(`rebind: ${values.length} values for a tensor of ${(e?.values as Float32Array | undefined)?.length}`);
    }
    const old = e.values;
    e.values = values;
    this.pool.release(old);
  }

  nativeMemory(): { liveBytes: number; freeBytes: number; allocations: number; reuses: number } {
    const p = this.pool;
    return { liveBytes: p.liveBytes, freeBytes: p.freeBytes, allocations: p.allocations, reuses: p.reuses };
  }
}

/**
 * The live values of a float32 tensor when the active backend is native, without pinning or copying:
 * for the host-side optimizer path (flat-params) that reads gradients and rewrites parameters every
 * step. The caller must not keep the array beyond the current synchronous use.
 */
export function peekNative(t: tf.Tensor): { backend: NativeBackend; values: Float32Array } | undefined {
  const backend = tf.engine().backend;
  if (!(backend instanceof NativeBackend) || t.dtype !== 'float32') return undefined;
  return { backend, values: backend.f32(t, 'peek') };
}

export type NativeKernelFunc = (args: { inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap; backend: NativeBackend }) =>
  tf.TensorInfo | tf.TensorInfo[];

/** A row of the kernel table: a tfjs kernel name and the function that runs it natively. */
export interface NativeKernel {
  kernelName: string;
  kernelFunc: NativeKernelFunc;
}
