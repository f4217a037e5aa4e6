/**
 * Row gather with a gradient the wasm backend can run.
 *
 * tf.gather's gradient needs UnsortedSegmentSum, which tfjs-backend-wasm does not register
 * (notes/tfjs-backends.md); scatterND sums duplicate indices the same way, and wasm has it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';

/** table: (V, d), ids: int32 (N) -> (N, d). Used for token/position embeddings and for pooling rows. */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const f = customGrad<(t: tf.Tensor2D) => tf.Tensor2D>((t: tf.Tensor, save: tf.GradSaveFunc) => {
    save([ids]);
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.scatterND(tf.reshape(saved[0], [-1, 1]), dy, t.shape),
      ],
    };
  });
  return f(table);
}
