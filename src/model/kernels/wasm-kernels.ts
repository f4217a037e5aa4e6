/**
 * BatchMatMul for the wasm backend that keeps every matrix product on XNNPACK's fast path.
 *
 * Stock tfjs-backend-wasm sends anything but a single, non-transposed product to a scalar loop
 * (~2 GFLOP/s with transposeB, ~0.7 with transposeA; XNNPACK does 11-32, notes/tfjs-backends.md).
 * Attention is all batched products (B*H small matrices) and its gradients are all transposed ones.
 * Here transposes are materialised once with the wasm Transpose kernel, and each batch entry is run as
 * its own batch-1 product on zero-copy *views*: extra tensor ids registered with the wasm runtime that
 * point inside the operands' heap memory. Each view id is disposed right after use, which also drops
 * XNNPACK's operator cache entry keyed on it, so a recycled id never sees stale packed weights.
 */
import * as tf from '@tensorflow/tfjs-core';

type WasmModule = {
  cwrap: (name: string, ret: null, args: string[]) => (...a: unknown[]) => void;
  tfjs: { registerTensor: (id: number, size: number, offset: number) => void; disposeData: (id: number) => void };
};
type WasmBackend = {
  wasm: WasmModule;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } };
  makeOutput(shape: number[], dtype: string): tf.TensorInfo;
  disposeData(dataId: object): boolean;
};

const stock = tf.getKernel(tf.BatchMatMul, 'wasm');
const transposeKernel = tf.getKernel(tf.Transpose, 'wasm');
if (!stock || !transposeKernel) throw new Error('wasm kernels must be registered before ringtune overrides them');

let matMul: (...a: unknown[]) => void;
// Far above the backend's own counter so view ids never collide with real tensors.
let nextViewId = 2 ** 30;

function setup(backend: tf.KernelBackend): void {
  stock!.setupFunc?.(backend);
  matMul = (backend as unknown as WasmBackend).wasm.cwrap('BatchMatMul', null, [
    'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
  ]);
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** Swaps the last two axes with the wasm Transpose kernel; the caller disposes the result. */
function transposeLast2(x: tf.TensorInfo, backend: tf.KernelBackend): tf.TensorInfo {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transposeKernel!.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
}

function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const single = batchA === 1 && batchB === 1 && !transposeA && !transposeB;
  if (single || batchA !== batchB || a.shape.length !== b.shape.length || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return stock!.kernelFunc(args) as tf.TensorInfo;
  }
  const backend = args.backend as unknown as WasmBackend;
  const at = transposeA ? transposeLast2(a, args.backend) : a;
  const bt = transposeB ? transposeLast2(b, args.backend) : b;
  const [M, K] = at.shape.slice(-2);
  const N = bt.shape[bt.shape.length - 1];
  const outShape = [...a.shape.slice(0, -2), M, N];
  const out = backend.makeOutput(outShape, 'float32');
  const aOff = backend.dataIdMap.get(at.dataId).memoryOffset;
  const bOff = backend.dataIdMap.get(bt.dataId).memoryOffset;
  const oOff = backend.dataIdMap.get(out.dataId).memoryOffset;
  const { registerTensor, disposeData } = backend.wasm.tfjs;
  const aShape = shapeBytes([1, M, K]);
  const bShape = shapeBytes([1, K, N]);
  for (let i = 0; i < batchA; i++) {
    const va = nextViewId++;
    const vb = nextViewId++;
    const vo = nextViewId++;
    registerTensor(va, M * K, aOff + 4 * i * M * K);
    registerTensor(vb, K * N, bOff + 4 * i * K * N);
    registerTensor(vo, M * N, oOff + 4 * i * M * N);
    matMul(va, aShape, 3, vb, bShape, 3, 0, 0, vo);
    disposeData(va);
    disposeData(vb);
    disposeData(vo);
    if (nextViewId > 2 ** 31 - 8) nextViewId = 2 ** 30;
  }
  if (transposeA) args.backend.disposeData(at.dataId);
  if (transposeB) args.backend.disposeData(bt.dataId);
  return out;
}

tf.unregisterKernel(tf.BatchMatMul, 'wasm');
tf.registerKernel({
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  setupFunc: setup as unknown as tf.KernelSetupFunc,
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
});
