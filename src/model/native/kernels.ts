/**
 * The native backend's kernel table and its registration. Every tfjs-backend-cpu kernel is registered
 * for `native` first (so every op runs), then the rows below replace the ones they name and add the
 * fused Rt* kernels the model layers use when present (`hasKernel`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeBackend, NativeKernel } from './backend.ts';
import { matmulKernels } from './kernels/matmul.ts';
import { elementwiseKernels } from './kernels/elementwise.ts';
import { attentionKernels } from './kernels/attention.ts';
import { normsKernels } from './kernels/norms.ts';
import { activationsKernels } from './kernels/activations.ts';
import { lossKernels } from './kernels/loss.ts';
import { optimKernels } from './kernels/optim.ts';

export const NATIVE = 'native';

export const nativeKernelTable: NativeKernel[] = [
  ...matmulKernels, ...elementwiseKernels, ...attentionKernels, ...normsKernels, ...activationsKernels,
  ...lossKernels, ...optimKernels,
];

type KernelOut = tf.TensorInfo | tf.TensorInfo[];

/** Registers the cpu fallbacks (wrapped to pin pooled buffers they alias) and the native rows. */
export function registerNativeKernels(): void {
  const native = new Set(nativeKernelTable.map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (native.has(k.kernelName)) continue;
    const f = k.kernelFunc;
    tf.registerKernel({ ...k, backendName: NATIVE, kernelFunc: (args) => (args.backend as unknown as NativeBackend).runFallback(f, args) });
  }
  for (const k of nativeKernelTable) {
    tf.registerKernel({
      kernelName: k.kernelName,
      backendName: NATIVE,
      kernelFunc: (args) => k.kernelFunc(args as unknown as Parameters<NativeKernel['kernelFunc']>[0]) as KernelOut,
    });
  }
}

/** True when the active backend runs `kernelName` (fused Rt* kernels exist only on `native`). */
export function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/** Runs a kernel through the engine (recorded on the gradient tape like any op). */
export function runKernel<T extends tf.Tensor | tf.Tensor[]>(kernelName: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): T {
  return tf.engine().runKernel(kernelName, inputs, attrs) as unknown as T;
}
