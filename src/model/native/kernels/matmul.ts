/**
 * Matrix products on OpenBLAS (native/src/matmul.cc): tfjs' BatchMatMul, and the fused linear layer
 * RtLinear / RtLinearGrad used by src/model/layers/linear.ts when the backend has them.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeKernel } from '../backend.ts';
import { numel } from '../../params.ts';


export const matmulKernels: NativeKernel[] = [
  {
    // a (..., M, K) or (..., K, M) with transposeA; b likewise; batch dims equal or all 1 on one side.
    kernelName: 'BatchMatMul',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      const ra = a.shape.length, rb = b.shape.length;
      if (ra < 2 || rb < 2) throw new NativeKernelError(`native kernel BatchMatMul: operands must have rank >= 2, got [${a.shape}] and [${b.shape}]`);
      const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
      const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const K2 = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
      const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
      const batchShapeA = a.shape.slice(0, -2), batchShapeB = b.shape.slice(0, -2);
      const bA = numel(batchShapeA), bB = numel(batchShapeB);
      const sameBatch = batchShapeA.length === batchShapeB.length && batchShapeA.every((d, i) => d === batchShapeB[i]);
      if (K !== K2 || !(sameBatch || bA === 1 || bB === 1)) {
        throw new NativeKernelError(`native kernel BatchMatMul: cannot multiply [${a.shape}]${transposeA ? 'ᵀ' : ''} by [${b.shape}]${transposeB ? 'ᵀ' : ''}`);
      }
      const batchShape = bA >= bB ? batchShapeA : batchShapeB;
      const batch = Math.max(bA, bB);
      const out = backend.alloc(batch * M * N, 'BatchMatMul output');
      backend.addon.batchMatMul(backend.f32(a, 'BatchMatMul'), backend.f32(b, 'BatchMatMul'), out, batch, bA, bB, M, K, N, !!transposeA, !!transposeB);
      return backend.out([...batchShape, M, N], out);
    },
  },
  {
    // x (N, in), w (in, out) or (out, in) with attrs.transW, [bias (out)] -> (N, out)
    kernelName: 'RtLinear',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, w, bias } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; bias?: tf.TensorInfo };
      const transW = !!attrs.transW;
      const [N, In] = x.shape, [In2, Out] = transW ? [w.shape[1], w.shape[0]] : w.shape;
      if (x.shape.length !== 2 || w.shape.length !== 2 || In !== In2 || (bias && (bias.shape.length !== 1 || bias.shape[0] !== Out))) {
        throw new NativeKernelError(`native kernel RtLinear: x [${x.shape}], w [${w.shape}]${bias ? `, bias [${bias.shape}]` : ''} do not fit (N, in) @ (in, out) + (out)`);
      }
      const y = backend.alloc(N * Out, 'RtLinear output');
      backend.addon.linear(backend.f32(x, 'RtLinear'), backend.f32(w, 'RtLinear'), bias ? backend.f32(bias, 'RtLinear') : null, y, N, In, Out, transW);
      return backend.out([N, Out], y);
    },
  },
  {
    // dy (N, out), x (N, in), w (in, out) -> [dx (N, in), dw (in, out), db (out)] (db only with attrs.hasBias)
    kernelName: 'RtLinearGrad',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { dy, x, w } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; w: tf.TensorInfo };
      const transW = !!attrs.transW;
      const [N, In] = x.shape, Out = transW ? w.shape[0] : w.shape[1];
      if (dy.shape[0] !== N || dy.shape[1] !== Out || w.shape[transW ? 1 : 0] !== In) {
        throw new NativeKernelError(`native kernel RtLinearGrad: dy [${dy.shape}], x [${x.shape}], w [${w.shape}] do not fit`);
      }
      const dx = backend.alloc(N * In, 'RtLinearGrad dx');
      const dw = backend.alloc(In * Out, 'RtLinearGrad dw');
      const db = attrs.hasBias ? backend.alloc(Out, 'RtLinearGrad db') : null;
      backend.addon.linearGrad(backend.f32(dy, 'RtLinearGrad'), backend.f32(x, 'RtLinearGrad'), backend.f32(w, 'RtLinearGrad'), dx, dw, db, N, In, Out, transW);
      const outs = [backend.out([N, In], dx), backend.out(transW ? [Out, In] : [In, Out], dw)];
      if (db) outs.push(backend.out([Out], db));
      return outs;
    },
  },
];
