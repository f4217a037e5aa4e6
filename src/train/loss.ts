/**
 * Token-weighted cross-entropy, returned as a SUM so that a global batch split across micro-batches
 * and workers adds up exactly: loss = sum_n w_n * (logsumexp(z_n) - z_n[y_n]); the caller divides by
 * the global number of loss tokens (causal LM) or examples (classification).
 *
 * Custom gradient (one exp, no one-hot of the logits' size in the forward pass):
 *   dL/dz_n = w_n * (softmax(z_n) - onehot(y_n)) * dy
 * On the native backend each direction is one kernel (RtCrossEntropy saves only the per-row
 * logsumexp; RtCrossEntropyGrad writes softmax straight into dlogits), registered with its gradient below.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from '../model/layers/custom-grad.ts';
import { hasKernel, runKernel } from '../model/native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtCrossEntropy',
  inputsToSave: ['logits', 'targets', 'weights'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved) => {
    const [logits, targets, weights, lse] = saved;
    // Two outputs: the gradient of the loss, and zeros for the lse nobody differentiates.
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
    return { logits: () => runKernel<tf.Tensor>('RtCrossEntropyGrad', { dy, logits, targets, weights, lse }) };
  },
});

/** logits (N, V), targets int32 (N), weights float32 (N) -> scalar sum. */
export function crossEntropySum(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  if (hasKernel('RtCrossEntropy')) {
    const [loss, lse] = runKernel<tf.Tensor[]>('RtCrossEntropy', { logits, targets, weights });
    lse.dispose(); // the tape keeps its own reference for the gradient
    return loss as tf.Scalar;
  }
  const [N, V] = logits.shape;
  const f = customGrad<(z: tf.Tensor2D) => tf.Scalar>((z: tf.Tensor, save: tf.GradSaveFunc) => {
    const shifted = tf.sub(z, tf.max(z, -1, true));
    const e = tf.exp(shifted);
    const sumE = tf.sum(e, -1, true);
    const flatIdx = tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), targets);
    const picked = tf.gather(tf.reshape(shifted, [N * V]), flatIdx); // (N)
    const perToken = tf.sub(tf.reshape(tf.log(sumE), [N]), picked);
    // Closure tensors are disposed before backprop unless saved.
    save([e, sumE, flatIdx, weights]);
    return {
      value: tf.sum(tf.mul(perToken, weights)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [es, sums, idx, ws] = saved;
        const w = tf.reshape(tf.mul(ws, dy), [N, 1]);
        const probsW = tf.mul(tf.div(es, sums), w);
        const oneHotW = tf.scatterND(tf.reshape(idx, [N, 1]), tf.reshape(w, [N]), [N * V]);
        return tf.sub(probsW, tf.reshape(oneHotW, [N, V]));
      },
    };
  });
  return f(logits);
}
