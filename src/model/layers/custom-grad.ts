/** tf.customGrad with usable types: tfjs types the forward's inputs as (Tensor | GradSaveFunc)[]. */
import * as tf from '@tensorflow/tfjs-core';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Forward = (...args: any[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

export function customGrad<F extends (...inputs: never[]) => tf.Tensor>(forward: Forward): F {
  return tf.customGrad(forward as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as F;
}
