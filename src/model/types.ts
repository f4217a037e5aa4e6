/** Shapes passed between a family's body and the task heads. */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayerCache } from './layers/attention.ts';

export interface BodyInput {
  ids: tf.Tensor2D; // (B, T) int32
  B: number;
  T: number;
  /** Position of ids[:, 0]: the number of cached tokens when generating, else 0. */
  offset: number;
  /** (B, S) 1 = attend, 0 = padding; needed for BERT's bidirectional attention. */
  attentionMask?: tf.Tensor2D;
  tokenTypeIds?: tf.Tensor2D; // (B, T) int32, BERT only
  cache?: LayerCache[];
}

export interface BodyOutput {
  hidden: tf.Tensor2D; // (B*T, d), after the final norm
  cache: LayerCache[];
}
