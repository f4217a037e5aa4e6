/** Feed-forward blocks. h: (N, d) -> (N, d). */
import * as tf from '@tensorflow/tfjs-core';
import { linear } from './linear.ts';

/** GPT-2 / BERT: W_out act(W_in h + b_in) + b_out, W_in (d, dFF), W_out (dFF, d). */
export function mlp(h: tf.Tensor2D, wIn: tf.Tensor2D, bIn: tf.Tensor1D | undefined, wOut: tf.Tensor2D,
  bOut: tf.Tensor1D | undefined, act: (x: tf.Tensor) => tf.Tensor): tf.Tensor2D {
  return linear(act(linear(h, wIn, bIn)) as tf.Tensor2D, wOut, bOut);
}

/** Llama SwiGLU: down(silu(gate h) * up h), gate/up (d, dFF), down (dFF, d). */
export function swiglu(h: tf.Tensor2D, wGate: tf.Tensor2D, wUp: tf.Tensor2D, wDown: tf.Tensor2D,
  biases?: { gate?: tf.Tensor1D; up?: tf.Tensor1D; down?: tf.Tensor1D }): tf.Tensor2D {
  const g = linear(h, wGate, biases?.gate);
  const u = linear(h, wUp, biases?.up);
  return linear(tf.mul(tf.mul(g, tf.sigmoid(g)), u) as tf.Tensor2D, wDown, biases?.down);
}
