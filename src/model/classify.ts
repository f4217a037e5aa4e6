/** One text through a sequence-classification model: label probabilities keyed by label name. */
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from './model.ts';
import type { Tokenizer } from './tokenizer.ts';
import { encodeTruncated, inferenceMaxLength } from './truncation.ts';

export interface Classification {
  input: string;
  label: string;
  scores: Record<string, number>;
}

/**
 * Truncates by the rule data preparation uses (src/model/truncation.ts), to `maxLength` tokens
 * (default: the model's positions, or the tokenizer's model_max_length when smaller), so a text
 * scored here gets the label eval gave it when eval ran with that max_seq_len.
 */
export async function classifyText(model: Model, tok: Tokenizer, text: string, maxLength = inferenceMaxLength(model.config.maxPositions, tok)): Promise<Classification> {
  const ids = encodeTruncated(tok, text, maxLength);
  const probs = tf.tidy(() => tf.softmax(model.forward({
    ids: tf.tensor2d([ids], [1, ids.length], 'int32'), lengths: [ids.length], attentionMask: tf.ones([1, ids.length], 'int32') as tf.Tensor2D,
  })));
  const p = await probs.data();
  probs.dispose();
  const scores = Object.fromEntries([...p].map((x, i) => [model.config.id2label[i], x]));
  const best = [...p].indexOf(Math.max(...p));
  return { input: text, label: model.config.id2label[best], scores };
}
