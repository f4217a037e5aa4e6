/**
 * LayerNorm over the last axis (biased variance, as torch.nn.LayerNorm) with a hand-written gradient:
 * autodiff through tf.moments builds ~12 small kernels; this needs 5 (notes/tfjs-backends.md).
 *
 * With xhat = (x - mean) * rstd and g = dy * gamma:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dgamma = sum_rows(dy * xhat),  dbeta = sum_rows(dy)
 * On the native backend each direction is one kernel (RtLayerNorm / RtLayerNormGrad, native/src/norms.cc):
 * the forward also returns the per-row mean and rstd, which are all the backward keeps besides x and gamma.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { sumRows } from './linear.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtLayerNorm',
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved) => {
    const [x, gamma, mean, rstd] = saved;
    // Outputs 1 and 2 (mean, rstd) are internal to the layer: their incoming gradients are zeros.
    const dy = (dys as tf.Tensor[])[0];
    const [dx, dgamma, dbeta] = runKernel<tf.Tensor[]>('RtLayerNormGrad', { dy, x, gamma, mean, rstd });
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
  },
});

export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (hasKernel('RtLayerNorm')) {
    const [y, mean, rstd] = runKernel<tf.Tensor[]>('RtLayerNorm', { x, gamma, beta }, { eps });
    // The tape keeps its own references to mean/rstd when recording a gradient.
    mean.dispose();
    rstd.dispose();
    return y as tf.Tensor2D;
  }
  const f = customGrad<(a: tf.Tensor2D, b: tf.Tensor1D, c: tf.Tensor1D) => tf.Tensor2D>((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const { mean, variance } = tf.moments(xi, -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(tf.sub(xi, mean), rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, gs] = saved;
        const gdy = tf.mul(dy, gs);
        const meanG = tf.mean(gdy, -1, true);
        const meanGX = tf.mean(tf.mul(gdy, xh), -1, true);
        const dx = tf.mul(rs, tf.sub(tf.sub(gdy, meanG), tf.mul(xh, meanGX)));
        return [dx, sumRows(tf.mul(dy, xh) as tf.Tensor2D), sumRows(dy as tf.Tensor2D)];
      },
    };
  });
  return f(x, gamma, beta);
}
