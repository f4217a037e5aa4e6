/**
 * Examples -> padded tensors' host arrays. Right padding to the longest example of the micro-batch;
 * padded positions carry loss weight 0 (LM) or are masked as keys (BERT) / not pooled (decoders).
 */
import type { ClsExample, LmExample } from './examples.ts';

export interface LmBatch {
  B: number;
  T: number;
  ids: Int32Array; // (B, T) inputs = tokens[0..n-2]
  targets: Int32Array; // (B*T) tokens[1..n-1]
  weights: Float32Array; // (B*T) 1 where a loss target, else 0
  lossTokens: number;
}

export interface ClsBatch {
  B: number;
  T: number;
  ids: Int32Array; // (B, T)
  attentionMask: Int32Array; // (B, T)
  lengths: number[];
  labels: Int32Array; // (B)
}

export function collateLm(examples: readonly LmExample[], padId: number): LmBatch {
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.tokens.length - 1));
  const ids = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T);
  const weights = new Float32Array(B * T);
  let lossTokens = 0;
  examples.forEach((e, b) => {
    for (let t = 0; t < e.tokens.length - 1; t++) {
      ids[b * T + t] = e.tokens[t];
      targets[b * T + t] = e.tokens[t + 1];
      const w = e.lossMask[t + 1];
      weights[b * T + t] = w;
      lossTokens += w;
    }
  });
  return { B, T, ids, targets, weights, lossTokens };
}

export function collateCls(examples: readonly ClsExample[], padId: number): ClsBatch {
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.tokens.length));
  const ids = new Int32Array(B * T).fill(padId);
  const attentionMask = new Int32Array(B * T);
  examples.forEach((e, b) => {
    ids.set(e.tokens, b * T);
    attentionMask.fill(1, b * T, b * T + e.tokens.length);
  });
  return { B, T, ids, attentionMask, lengths: examples.map((e) => e.tokens.length), labels: Int32Array.from(examples, (e) => e.label) };
}
