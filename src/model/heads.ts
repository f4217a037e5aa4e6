/**
 * Task heads on top of a body's hidden states (B*T, d).
 *   causal LM:                logits (B*T, V) = hidden @ lm_head   (tied: embed.tokens^T)
 *   decoder classification:   logits (B, L) = score(hidden[b, last_b])  last_b = last non-pad token (HF)
 *   BERT classification:      logits (B, L) = classifier(tanh(pooler(hidden[b, 0])))
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.ts';
import { gatherRows } from './layers/embedding.ts';
import { linear, linearTransposed } from './layers/linear.ts';
import { optionalParam, param, type Params } from './params.ts';

export function lmHead(p: Params, hidden: tf.Tensor2D): tf.Tensor2D {
  const head = optionalParam<tf.Rank.R2>(p, 'lm_head');
  return head ? linear(hidden, head) : linearTransposed(hidden, param<tf.Rank.R2>(p, 'embed.tokens'));
}

/** Picks row b*T + index[b] of hidden for each sequence b: (B, d). */
function pickRows(hidden: tf.Tensor2D, T: number, index: readonly number[]): tf.Tensor2D {
  const rows = tf.tensor1d(index.map((t, b) => b * T + t), 'int32');
  return gatherRows(hidden, rows);
}

export function classificationHead(cfg: ModelConfig, p: Params, hidden: tf.Tensor2D, B: number, T: number, lengths?: readonly number[]): tf.Tensor2D {
  if (cfg.family === 'bert') {
    const cls = pickRows(hidden, T, new Array(B).fill(0));
    const pooled = tf.tanh(linear(cls, param(p, 'pooler.weight'), param(p, 'pooler.bias'))) as tf.Tensor2D;
    return linear(pooled, param(p, 'score.weight'), param(p, 'score.bias'));
  }
  const last = lengths ? lengths.map((n) => n - 1) : new Array(B).fill(T - 1);
  return linear(pickRows(hidden, T, last), param(p, 'score.weight'), optionalParam(p, 'score.bias'));
}
