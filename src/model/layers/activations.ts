/** Activations by their Hugging Face names. */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from '../config.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** gelu_new (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  // x * x * x, not pow(x, 3): wasm Pow is a slow scalar loop and its gradient needs log/where.
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), SQRT_2_OVER_PI);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** gelu (BERT): exact 0.5 x (1 + erf(x / sqrt 2)). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

export function activation(name: Activation): (x: tf.Tensor) => tf.Tensor {
  return { gelu_new: geluTanh, gelu: geluErf, silu }[name];
}
