/**
 * Elementwise activations (native/src/activations.cc), used by src/model/layers/activations.ts and
 * mlp.ts when the backend has them. Any shape; the backward recomputes from the forward's inputs.
 *   RtGeluTanh / RtGeluErf / RtSilu   x -> y              Rt*Grad   dy, x -> dx
 *   RtSwiGlu                          g, u -> silu(g) u   RtSwiGluGrad  dy, g, u -> [dg, du]
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeBackend, type NativeKernel } from '../backend.ts';
import { numel } from '../../params.ts';
import type { F32 } from '../addon.ts';

type UnaryName = 'geluTanh' | 'geluErf' | 'silu';
type ActivationsAddon = Record<UnaryName, (x: F32, y: F32) => void> & Record<`${UnaryName}Grad`, (dy: F32, x: F32, dx: F32) => void> & {
  swiGlu(g: F32, u: F32, y: F32): void;
  swiGluGrad(dy: F32, g: F32, u: F32, dg: F32, du: F32): void;
};

const addon = (b: NativeBackend) => b.addon as unknown as ActivationsAddon;
const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function sameShapes(kernel: string, named: Record<string, tf.TensorInfo>): number[] {
  const ts = Object.values(named);
  if (ts.some((t) => !same(t.shape, ts[0].shape))) {
    throw new NativeKernelError(`native kernel ${kernel}: shapes differ: ${Object.entries(named).map(([k, t]) => `${k} [${t.shape}]`).join(', ')}`);
  }
  return ts[0].shape;
}

function unary(kernelName: string, fn: UnaryName): NativeKernel[] {
  return [
    {
      kernelName,
      kernelFunc: ({ inputs, backend }) => {
        const { x } = inputs as { x: tf.TensorInfo };
        const y = backend.alloc(numel(x.shape), `${kernelName} y`);
        addon(backend)[fn](backend.f32(x, kernelName), y);
        return backend.out(x.shape, y);
      },
    },
    {
      kernelName: `${kernelName}Grad`,
      kernelFunc: ({ inputs, backend }) => {
        const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
        const k = `${kernelName}Grad`;
        const shape = sameShapes(k, { dy, x });
        const dx = backend.alloc(numel(shape), `${k} dx`);
        addon(backend)[`${fn}Grad`](backend.f32(dy, k), backend.f32(x, k), dx);
        return backend.out(shape, dx);
      },
    },
  ];
}

export const activationsKernels: NativeKernel[] = [
  ...unary('RtGeluTanh', 'geluTanh'),
  ...unary('RtGeluErf', 'geluErf'),
  ...unary('RtSilu', 'silu'),
  {
    kernelName: 'RtSwiGlu',
    kernelFunc: ({ inputs, backend }) => {
      const { g, u } = inputs as { g: tf.TensorInfo; u: tf.TensorInfo };
      const k = 'RtSwiGlu';
      const shape = sameShapes(k, { g, u });
      const y = backend.alloc(numel(shape), `${k} y`);
      addon(backend).swiGlu(backend.f32(g, k), backend.f32(u, k), y);
      return backend.out(shape, y);
    },
  },
  {
    kernelName: 'RtSwiGluGrad',
    kernelFunc: ({ inputs, backend }) => {
      const { dy, g, u } = inputs as { dy: tf.TensorInfo; g: tf.TensorInfo; u: tf.TensorInfo };
      const k = 'RtSwiGluGrad';
      const shape = sameShapes(k, { dy, g, u });
      const n = numel(shape);
      const dg = backend.alloc(n, `${k} dg`), du = backend.alloc(n, `${k} du`);
      addon(backend).swiGluGrad(backend.f32(dy, k), backend.f32(g, k), backend.f32(u, k), dg, du);
      return [backend.out(shape, dg), backend.out(shape, du)];
    },
  },
];
