/**
 * LayerNorm over the last axis (biased variance, as torch.nn.LayerNorm) with a hand-written gradient:
 * autodiff through tf.moments builds ~12 small kernels; this needs 5 (notes/tfjs-backends.md).
 *
 * With xhat = (x - mean) * rstd and g = dy * gamma:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dgamma = sum_rows(dy * xhat),  dbeta = sum_rows(dy)
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { sumRows } from './linear.ts';

export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
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
