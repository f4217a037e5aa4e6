/**
 * y = x @ W (+ b) with W stored [in, out].
 *
 * Why a custom gradient: tfjs' default MatMul gradient uses transposeA/transposeB flags, which on the
 * wasm backend leave XNNPACK's fast path (~2 and ~0.7 GFLOP/s instead of 11-32, notes/tfjs-backends.md).
 * Materialising the transposes once and calling plain matMul is 5-15x faster for the backward pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';

const matMulFastGrad = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
    },
  };
});

/** x: (N, in), w: (in, out), b: (out) -> (N, out). */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor): tf.Tensor2D {
  const y = matMulFastGrad(x, w);
  return b ? tf.add(y, b) : y;
}
