/**
 * Native kernels of the loss family (native/src/loss.cc): fused token-weighted cross-entropy
 * (RtCrossEntropy / RtCrossEntropyGrad, used by src/train/loss.ts) and embedding row gather
 * (RtGather / RtGatherGrad, used by src/model/layers/embedding.ts), each when the backend has them.
 * Ids are checked here so a bad id throws NativeKernelError naming the op before C++ sees it.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeBackend, type NativeKernel } from '../backend.ts';
import type { F32, I32 } from '../addon.ts';

interface LossAddon {
  crossEntropy(z: F32, targets: I32, weights: F32, loss: F32, lse: F32, N: number, V: number): void;
  crossEntropyGrad(z: F32, targets: I32, weights: F32, lse: F32, dz: F32, dy: number, N: number, V: number): void;
  gather(table: F32, ids: I32, out: F32, N: number, V: number, d: number): void;
  gatherGrad(dy: F32, ids: I32, dtable: F32, N: number, V: number, d: number): void;
}

const addonOf = (backend: NativeBackend) => backend.addon as unknown as LossAddon;

/**
 * Float32 values of an input. tfjs-backend-cpu's Cast from int32 to float32 keeps the Int32Array
 * (e.g. `tf.onesLike(ids).toFloat()`), which backend.f32 rejects: copy those (weights are small).
 */
function f32(backend: NativeBackend, t: tf.TensorInfo, kernel: string): Float32Array {
  if (t.dtype === 'float32') {
    const v = backend.valuesOf(t);
    if (ArrayBuffer.isView(v) && !(v instanceof Float32Array) && !(v instanceof DataView)) return Float32Array.from(v as unknown as ArrayLike<number>);
  }
  return backend.f32(t, kernel);
}

function checkIds(kernel: string, what: string, ids: Int32Array, V: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= V) throw new NativeKernelError(`native kernel ${kernel}: ${what} ${id} at position ${i} is outside [0, ${V})`);
  }
}

function crossEntropyShapes(kernel: string, z: tf.TensorInfo, targets: tf.TensorInfo, weights: tf.TensorInfo): [number, number] {
  const [N, V] = z.shape;
  if (z.shape.length !== 2 || V < 1 || targets.shape.length !== 1 || targets.shape[0] !== N || weights.shape.length !== 1 || weights.shape[0] !== N) {
    throw new NativeKernelError(`native kernel ${kernel}: logits [${z.shape}], targets [${targets.shape}], weights [${weights.shape}] do not fit (N, V), (N), (N) with V >= 1`);
  }
  return [N, V];
}

export const lossKernels: NativeKernel[] = [
  {
    // logits (N, V), targets int32 (N), weights (N) -> [loss (scalar), lse (N)]
    kernelName: 'RtCrossEntropy',
    kernelFunc: ({ inputs, backend }) => {
      const { logits, targets, weights } = inputs as { logits: tf.TensorInfo; targets: tf.TensorInfo; weights: tf.TensorInfo };
      const k = 'RtCrossEntropy';
      const [N, V] = crossEntropyShapes(k, logits, targets, weights);
      const y = backend.i32(targets, k);
      checkIds(k, 'target', y, V);
      const loss = backend.alloc(1, 'RtCrossEntropy loss');
      const lse = backend.alloc(N, 'RtCrossEntropy lse');
      addonOf(backend).crossEntropy(f32(backend, logits, k), y, f32(backend, weights, k), loss, lse, N, V);
      return [backend.out([], loss), backend.out([N], lse)];
    },
  },
  {
    // dy (scalar), logits (N, V), targets (N), weights (N), lse (N) -> dlogits (N, V)
    kernelName: 'RtCrossEntropyGrad',
    kernelFunc: ({ inputs, backend }) => {
      const { dy, logits, targets, weights, lse } = inputs as Record<'dy' | 'logits' | 'targets' | 'weights' | 'lse', tf.TensorInfo>;
      const k = 'RtCrossEntropyGrad';
      const [N, V] = crossEntropyShapes(k, logits, targets, weights);
      if (dy.shape.length !== 0 || lse.shape.length !== 1 || lse.shape[0] !== N) {
        throw new NativeKernelError(`native kernel ${k}: dy [${dy.shape}] must be a scalar and lse [${lse.shape}] (N) for logits [${logits.shape}]`);
      }
      const y = backend.i32(targets, k);
      checkIds(k, 'target', y, V);
      const dz = backend.alloc(N * V, 'RtCrossEntropyGrad dlogits');
      addonOf(backend).crossEntropyGrad(f32(backend, logits, k), y, f32(backend, weights, k), f32(backend, lse, k), dz, f32(backend, dy, k)[0], N, V);
      return backend.out([N, V], dz);
    },
  },
  {
    // table (V, d), ids int32 (N) -> (N, d)
    kernelName: 'RtGather',
    kernelFunc: ({ inputs, backend }) => {
      const { table, ids } = inputs as { table: tf.TensorInfo; ids: tf.TensorInfo };
      const k = 'RtGather';
      if (table.shape.length !== 2 || ids.shape.length !== 1) {
        throw new NativeKernelError(`native kernel ${k}: table [${table.shape}] and ids [${ids.shape}] do not fit (V, d) and (N)`);
      }
      const [V, d] = table.shape, N = ids.shape[0];
      const idv = backend.i32(ids, k);
      checkIds(k, 'id', idv, V);
      const out = backend.alloc(N * d, 'RtGather output');
      addonOf(backend).gather(f32(backend, table, k), idv, out, N, V, d);
      return backend.out([N, d], out);
    },
  },
  {
    // dy (N, d), ids int32 (N), attrs.numRows V -> dtable (V, d), duplicate ids summed
    kernelName: 'RtGatherGrad',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { dy, ids } = inputs as { dy: tf.TensorInfo; ids: tf.TensorInfo };
      const k = 'RtGatherGrad';
      const V = attrs.numRows as number;
      if (dy.shape.length !== 2 || ids.shape.length !== 1 || ids.shape[0] !== dy.shape[0] || !Number.isInteger(V) || V < 0) {
        throw new NativeKernelError(`native kernel ${k}: dy [${dy.shape}], ids [${ids.shape}] and numRows ${V} do not fit (N, d), (N)`);
      }
      const [N, d] = dy.shape;
      const idv = backend.i32(ids, k);
      checkIds(k, 'id', idv, V);
      const dt = backend.alloc(V * d, 'RtGatherGrad dtable');
      addonOf(backend).gatherGrad(f32(backend, dy, k), idv, dt, N, V, d);
      return backend.out([V, d], dt);
    },
  },
];
