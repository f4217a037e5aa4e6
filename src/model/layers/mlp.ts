/** Feed-forward blocks. h: (N, d) -> (N, d). */
import * as tf from '@tensorflow/tfjs-core';
import { linear } from './linear.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

// silu(g) * u as one kernel each way on the native backend (native/src/activations.cc).
tf.registerGradient({
  kernelName: 'RtSwiGlu',
  inputsToSave: ['g', 'u'],
  gradFunc: (dy, saved) => {
    const [g, u] = saved;
    const [dg, du] = runKernel<tf.Tensor[]>('RtSwiGluGrad', { dy: dy as tf.Tensor, g, u });
    return { g: () => dg, u: () => du };
  },
});

/** silu(g) * u. */
export function swiGluProduct(g: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor2D {
  if (hasKernel('RtSwiGlu')) return runKernel<tf.Tensor2D>('RtSwiGlu', { g, u });
  return tf.mul(tf.mul(g, tf.sigmoid(g)), u);
}

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
  return linear(swiGluProduct(g, u), wDown, biases?.down);
}
