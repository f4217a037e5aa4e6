/**
 * Row gather with a gradient the wasm backend can run.
 *
 * tf.gather's gradient needs UnsortedSegmentSum, which tfjs-backend-wasm does not register
 * (notes/tfjs-backends.md); scatterND sums duplicate indices the same way, and wasm has it.
 * On the native backend: RtGather / RtGatherGrad (row copies; scatter-add into a zeroed (V, d) buffer
 * in a fixed order, so duplicates sum the same way whatever the thread count).
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtGather',
  inputsToSave: ['ids'],
  gradFunc: (dy, saved, attrs) => {
    const [ids] = saved;
    const numRows = (attrs as { numRows: number }).numRows;
    return {
      table: () => runKernel<tf.Tensor>('RtGatherGrad', { dy: dy as tf.Tensor, ids }, { numRows }),
      ids: () => tf.zerosLike(ids),
    };
  },
});

/** table: (V, d), ids: int32 (N) -> (N, d). Used for token/position embeddings and for pooling rows. */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  if (hasKernel('RtGather')) return runKernel<tf.Tensor2D>('RtGather', { table, ids }, { numRows: table.shape[0] });
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
