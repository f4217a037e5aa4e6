/**
 * Row norms over the last axis (native/src/norms.cc), used by src/model/layers/layer-norm.ts and
 * rms-norm.ts when the backend has them:
 *   RtLayerNorm      x (..., d), gamma (d), beta (d); attrs.eps -> [y (..., d), mean (N), rstd (N)]
 *   RtLayerNormGrad  dy, x, gamma, mean, rstd -> [dx, dgamma, dbeta]
 *   RtRmsNorm        x (..., d), weight (d); attrs.eps -> [y (..., d), rstd (N)]
 *   RtRmsNormGrad    dy, x, weight, rstd -> [dx, dweight]
 * N is the product of the leading dimensions. mean/rstd are saved for the backward, which recomputes
 * xhat from x instead of keeping an (N, d) tensor alive.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeBackend, type NativeKernel } from '../backend.ts';
import { numel } from '../../params.ts';
import type { F32 } from '../addon.ts';

interface NormsAddon {
  layerNorm(x: F32, gamma: F32, beta: F32, y: F32, mean: F32, rstd: F32, N: number, d: number, eps: number): void;
  layerNormGrad(dy: F32, x: F32, gamma: F32, mean: F32, rstd: F32, dx: F32, dgamma: F32, dbeta: F32, N: number, d: number): void;
  rmsNorm(x: F32, w: F32, y: F32, rstd: F32, N: number, d: number, eps: number): void;
  rmsNormGrad(dy: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32, N: number, d: number): void;
}

const addon = (b: NativeBackend) => b.addon as unknown as NormsAddon;
const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const fmt = (named: Record<string, tf.TensorInfo>) => Object.entries(named).map(([k, t]) => `${k} [${t.shape}]`).join(', ');

/** (N, d) of x, after checking that every per-feature input is (d) and every per-row input is (N). */
function rows(kernel: string, x: tf.TensorInfo, named: Record<string, tf.TensorInfo>, perFeature: tf.TensorInfo[],
  perRow: tf.TensorInfo[] = [], likeX: tf.TensorInfo[] = []): [number, number] {
  const d = x.shape[x.shape.length - 1];
  const N = x.shape.length === 0 ? 0 : numel(x.shape.slice(0, -1));
  if (x.shape.length < 1 || perFeature.some((t) => !same(t.shape, [d])) || perRow.some((t) => !same(t.shape, [N])) ||
    likeX.some((t) => !same(t.shape, x.shape))) {
    throw new NativeKernelError(`native kernel ${kernel}: ${fmt(named)} do not fit x (..., d), per-feature (d), per-row (N)`);
  }
  return [N, d];
}

export const normsKernels: NativeKernel[] = [
  {
    kernelName: 'RtLayerNorm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const k = 'RtLayerNorm';
      const [N, d] = rows(k, x, { x, gamma, beta }, [gamma, beta]);
      const y = backend.alloc(N * d, `${k} y`), mean = backend.alloc(N, `${k} mean`), rstd = backend.alloc(N, `${k} rstd`);
      addon(backend).layerNorm(backend.f32(x, k), backend.f32(gamma, k), backend.f32(beta, k), y, mean, rstd, N, d, attrs.eps as number);
      return [backend.out(x.shape, y), backend.out([N], mean), backend.out([N], rstd)];
    },
  },
  {
    kernelName: 'RtLayerNormGrad',
    kernelFunc: ({ inputs, backend }) => {
      const { dy, x, gamma, mean, rstd } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'rstd', tf.TensorInfo>;
      const k = 'RtLayerNormGrad';
      const [N, d] = rows(k, x, { dy, x, gamma, mean, rstd }, [gamma], [mean, rstd], [dy]);
      const dx = backend.alloc(N * d, `${k} dx`), dgamma = backend.alloc(d, `${k} dgamma`), dbeta = backend.alloc(d, `${k} dbeta`);
      addon(backend).layerNormGrad(backend.f32(dy, k), backend.f32(x, k), backend.f32(gamma, k), backend.f32(mean, k), backend.f32(rstd, k),
        dx, dgamma, dbeta, N, d);
      return [backend.out(x.shape, dx), backend.out([d], dgamma), backend.out([d], dbeta)];
    },
  },
  {
    kernelName: 'RtRmsNorm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, weight } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
      const k = 'RtRmsNorm';
      const [N, d] = rows(k, x, { x, weight }, [weight]);
      const y = backend.alloc(N * d, `${k} y`), rstd = backend.alloc(N, `${k} rstd`);
      addon(backend).rmsNorm(backend.f32(x, k), backend.f32(weight, k), y, rstd, N, d, attrs.eps as number);
      return [backend.out(x.shape, y), backend.out([N], rstd)];
    },
  },
  {
    kernelName: 'RtRmsNormGrad',
    kernelFunc: ({ inputs, backend }) => {
      const { dy, x, weight, rstd } = inputs as Record<'dy' | 'x' | 'weight' | 'rstd', tf.TensorInfo>;
      const k = 'RtRmsNormGrad';
      const [N, d] = rows(k, x, { dy, x, weight, rstd }, [weight], [rstd], [dy]);
      const dx = backend.alloc(N * d, `${k} dx`), dw = backend.alloc(d, `${k} dweight`);
      addon(backend).rmsNormGrad(backend.f32(dy, k), backend.f32(x, k), backend.f32(weight, k), backend.f32(rstd, k), dx, dw, N, d);
      return [backend.out(x.shape, dx), backend.out([d], dw)];
    },
  },
];
