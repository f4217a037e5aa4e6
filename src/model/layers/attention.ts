/**
 * Multi-head self-attention with grouped-query heads, optional rotary embeddings, a causal or
 * key-padding mask and a KV cache for generation.
 *
 * Shapes: h (B*T, d) -> q (B*T, H*hd), k/v (B*T, Hkv*hd) -> (B, H, T, hd) -> scores (B, H, T, S)
 * with S = past + T keys -> out (B*T, H*hd) -> o-proj (B*T, d).
 * q/k/v use three weights instead of one fused qkv matrix: splitting the activation costs a full copy
 * per slice on wasm, splitting the weight costs nothing (notes/tfjs-backends.md).
 *
 * On the native backend, without a KV cache (training, and the prompt step of generation), the middle
 * (scores, masks, softmax, probs @ v, head split/merge) is one kernel each way, RtAttention /
 * RtAttentionGrad (native/src/attention.cc), reading heads in place from the projection layout. The
 * cache it returns is then built only if the caller reads it (generate does, training does not).
 */
import * as tf from '@tensorflow/tfjs-core';
import { linear } from './linear.ts';
import { applyRope, type RopeTables } from './rope.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';
import type { AttentionAttrs } from '../native/kernels/attention.ts';

tf.registerGradient({
  kernelName: 'RtAttention',
  inputsToSave: ['q', 'k', 'v'],
  outputsToSave: [false, true], // probs
  gradFunc: (dys, saved, attrs) => {
    // dys[1] (for probs) is tfjs' zeros: probs only feeds the backward, never the loss.
    const dctx = (dys as tf.Tensor[])[0];
    const [q, k, v, probs] = saved;
    const [dq, dk, dv] = runKernel<tf.Tensor[]>('RtAttentionGrad', { dctx, q, k, v, probs }, attrs);
    // No keyMask entry: it is data (a tape that needs its gradient fails loudly).
    return { q: () => dq, k: () => dk, v: () => dv };
  },
});

export interface AttentionWeights {
  wq: tf.Tensor2D; wk: tf.Tensor2D; wv: tf.Tensor2D; wo: tf.Tensor2D;
  bq?: tf.Tensor1D; bk?: tf.Tensor1D; bv?: tf.Tensor1D; bo?: tf.Tensor1D;
}

/** Keys and values seen so far for one layer: (B, Hkv, S, hd) each. */
export type LayerCache = { k: tf.Tensor4D; v: tf.Tensor4D };

export interface AttentionShape {
  B: number; T: number; nHeads: number; nKvHeads: number; headDim: number;
  causal: boolean;
  /** Position of the first query token (the cache length when generating). */
  offset: number;
  rope?: RopeTables;
  /** (B, S) additive mask: 0 for keys to attend, a large negative number for padding. */
  keyMask?: tf.Tensor2D;
}

function causalMask(T: number, S: number, offset: number): tf.Tensor2D {
  const m = new Float32Array(T * S);
  for (let t = 0; t < T; t++) for (let s = offset + t + 1; s < S; s++) m[t * S + s] = -1e9;
  return tf.tensor2d(m, [T, S]);
}

/** (B*T, n*hd) -> (B, n, T, hd) */
function splitHeads(x: tf.Tensor2D, B: number, T: number, n: number, hd: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, T, n, hd]), [0, 2, 1, 3]);
}

/** Query head h reads kv head floor(h / rep), as HF repeat_kv: (B, Hkv, S, hd) -> (B, Hkv*rep, S, hd). */
function repeatKv(x: tf.Tensor4D, rep: number): tf.Tensor4D {
  if (rep === 1) return x;
  const [B, Hkv, S, hd] = x.shape;
  // Rank-3 tile: tfjs has no gradient for tiling rank-5 tensors.
  return tf.reshape(tf.tile(tf.reshape(x, [B * Hkv, 1, S * hd]), [1, rep, 1]), [B, Hkv * rep, S, hd]);
}

export function attention(
  h: tf.Tensor2D,
  w: AttentionWeights,
  s: AttentionShape,
  cache?: LayerCache,
): { out: tf.Tensor2D; cache: LayerCache } {
  const { B, T, nHeads: H, nKvHeads: Hkv, headDim: hd } = s;
  let q = linear(h, w.wq, w.bq);
  let k = linear(h, w.wk, w.bk);
  const v = linear(h, w.wv, w.bv);
  if (s.rope) {
    q = tf.reshape(applyRope(tf.reshape(q, [B * T * H, hd]), s.rope, B, T, H, s.offset), [B * T, H * hd]);
    k = tf.reshape(applyRope(tf.reshape(k, [B * T * Hkv, hd]), s.rope, B, T, Hkv, s.offset), [B * T, Hkv * hd]);
  }
  if (!cache && hasKernel('RtAttention')) return fusedAttention(q, k, v, w, s);
  let k4 = splitHeads(k, B, T, Hkv, hd);
  let v4 = splitHeads(v, B, T, Hkv, hd);
  if (cache) {
    k4 = tf.concat([cache.k, k4], 2);
    v4 = tf.concat([cache.v, v4], 2);
  }
  const S = k4.shape[2];
  const q4 = splitHeads(q, B, T, H, hd);
  let scores = tf.mul(tf.matMul(q4, repeatKv(k4, H / Hkv), false, true), 1 / Math.sqrt(hd)); // (B, H, T, S)
  if (s.causal) scores = tf.add(scores, causalMask(T, S, s.offset));
  if (s.keyMask) scores = tf.add(scores, tf.reshape(s.keyMask, [B, 1, 1, S]));
  const probs = tf.softmax(scores);
  const ctx = tf.matMul(probs, repeatKv(v4, H / Hkv)); // (B, H, T, hd)
  const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B * T, H * hd]) as tf.Tensor2D;
  return { out: linear(merged, w.wo, w.bo), cache: { k: k4, v: v4 } };
}

function fusedAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, w: AttentionWeights, s: AttentionShape): { out: tf.Tensor2D; cache: LayerCache } {
  const { B, T, nHeads: H, nKvHeads: Hkv, headDim: hd } = s;
  const attrs: AttentionAttrs = { B, T, H, Hkv, hd, causal: s.causal, scale: 1 / Math.sqrt(hd), offset: s.offset };
  const [ctx, probs] = runKernel<tf.Tensor[]>('RtAttention', s.keyMask ? { q, k, v, keyMask: s.keyMask } : { q, k, v }, attrs as unknown as tf.NamedAttrMap);
  probs.dispose(); // the tape keeps its own reference for the backward
  // The cache views are made on first read, in the caller's scope (generate reads them inside its tidy).
  let k4: tf.Tensor4D | undefined, v4: tf.Tensor4D | undefined;
  const cache: LayerCache = {
    get k() { return (k4 ??= splitHeads(k, B, T, Hkv, hd)); },
    get v() { return (v4 ??= splitHeads(v, B, T, Hkv, hd)); },
  };
  return { out: linear(ctx as tf.Tensor2D, w.wo, w.bo), cache };
}

/** attentionMask (B, S) of 1/0 -> additive key mask (0 / -1e9), as HF's extended attention mask. */
export function keyMaskFrom(attentionMask: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.sub(1, tf.cast(attentionMask, "float32")), -1e9) as tf.Tensor2D;
}
