/**
 * RMSNorm (Llama): y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), computed in float32.
 * Gradient by hand: dx = rstd * g - x * rstd^3 * mean(g * x) with g = dy * w; dw = sum_rows(dy * x * rstd).
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { sumRows } from './linear.ts';

export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
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
