/** One text through a sequence-classification model: label probabilities keyed by label name. */
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from './model.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface Classification {
  input: string;
  label: string;
  scores: Record<string, number>;
}

export async function classifyText(model: Model, tok: Tokenizer, text: string): Promise<Classification> {
  const ids = tok.encode(text).slice(0, model.config.maxPositions);
  const probs = tf.tidy(() => tf.softmax(model.forward({
    ids: tf.tensor2d([ids], [1, ids.length], 'int32'), lengths: [ids.length], attentionMask: tf.ones([1, ids.length], 'int32') as tf.Tensor2D,
  })));
  const p = await probs.data();
  probs.dispose();
  const scores = Object.fromEntries([...p].map((x, i) => [model.config.id2label[i], x]));
  const best = [...p].indexOf(Math.max(...p));
  return { input: text, label: model.config.id2label[best], scores };
}
