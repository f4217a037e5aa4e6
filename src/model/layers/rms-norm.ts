/**
 * RMSNorm (Llama): y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), computed in float32.
 * Gradient by hand: dx = rstd * g - x * rstd^3 * mean(g * x) with g = dy * w; dw = sum_rows(dy * x * rstd).
 * On the native backend each direction is one kernel (RtRmsNorm / RtRmsNormGrad, native/src/norms.cc);
 * the forward also returns the per-row rstd, which is all the backward keeps besides x and w.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { sumRows } from './linear.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtRmsNorm',
  inputsToSave: ['x', 'weight'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved) => {
    const [x, weight, rstd] = saved;
    // Output 1 (rstd) is internal to the layer: its incoming gradient is zeros.
    const dy = (dys as tf.Tensor[])[0];
    const [dx, dw] = runKernel<tf.Tensor[]>('RtRmsNormGrad', { dy, x, weight, rstd });
    return { x: () => dx, weight: () => dw };
  },
});

export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (hasKernel('RtRmsNorm')) {
    const [y, rstd] = runKernel<tf.Tensor[]>('RtRmsNorm', { x, weight }, { eps });
    rstd.dispose(); // the tape keeps its own reference when recording a gradient
    return y as tf.Tensor2D;
  }
  const f = customGrad<(a: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D>((xi: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xi), -1, true), eps));
    const xn = tf.mul(xi, rstd);
    save([xi, rstd, w, xn]);
    return {
      value: tf.mul(xn, w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, rs, ws, xns] = saved;
        const g = tf.mul(dy, ws);
        const meanGX = tf.mean(tf.mul(g, xs), -1, true);
        const dx = tf.sub(tf.mul(g, rs), tf.mul(xs, tf.mul(tf.mul(tf.mul(rs, rs), rs), meanGX)));
        return [dx, sumRows(tf.mul(dy, xns) as tf.Tensor2D)];
      },
    };
  });
  return f(x, weight);
}
