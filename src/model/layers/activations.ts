/** Activations by their Hugging Face names. */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from '../config.ts';
import { customGrad } from './custom-grad.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

// On the native backend each activation is one kernel each way (native/src/activations.cc), which recomputes
// from the saved input x rather than saving intermediates.
for (const kernelName of ['RtGeluTanh', 'RtGeluErf', 'RtSilu']) {
  tf.registerGradient({
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return { x: () => runKernel<tf.Tensor>(`${kernelName}Grad`, { dy: dy as tf.Tensor, x }) };
    },
  });
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * gelu_new (GPT-2): y = 0.5 x (1 + t), t = tanh(c (x + a x^3)), c = sqrt(2/pi), a = 0.044715.
 * Hand-written gradient (autodiff builds ~14 elementwise kernels over the MLP's widest tensor):
 *   dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
 * x * x * x, not pow(x, 3): wasm Pow is a slow scalar loop and its gradient needs log/where.
 */
const geluTanhOp = customGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const x2 = tf.mul(x, x);
  const t = tf.tanh(tf.mul(tf.mul(x, tf.add(tf.mul(x2, 0.044715), 1)), SQRT_2_OVER_PI));
  save([x, t]);
  return {
    value: tf.mul(tf.mul(x, 0.5), tf.add(t, 1)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ts] = saved;
      const sech2 = tf.sub(1, tf.mul(ts, ts));
      const inner = tf.mul(tf.add(tf.mul(tf.mul(xs, xs), 3 * 0.044715), 1), SQRT_2_OVER_PI);
      const d = tf.add(tf.mul(tf.add(ts, 1), 0.5), tf.mul(tf.mul(tf.mul(xs, 0.5), sech2), inner));
      return tf.mul(dy, d);
    },
  };
});

export function geluTanh(x: tf.Tensor): tf.Tensor {
  if (hasKernel('RtGeluTanh')) return runKernel<tf.Tensor>('RtGeluTanh', { x });
  return geluTanhOp(x);
}

/** gelu (BERT): exact 0.5 x (1 + erf(x / sqrt 2)). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  if (hasKernel('RtGeluErf')) return runKernel<tf.Tensor>('RtGeluErf', { x });
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

export function silu(x: tf.Tensor): tf.Tensor {
  if (hasKernel('RtSilu')) return runKernel<tf.Tensor>('RtSilu', { x });
  return tf.mul(x, tf.sigmoid(x));
}

export function activation(name: Activation): (x: tf.Tensor) => tf.Tensor {
  return { gelu_new: geluTanh, gelu: geluErf, silu }[name];
}
