// Independent float64 reference of Hugging Face BertForSequenceClassification
// (transformers/models/bert/modeling_bert.py), inference mode (dropout off), absolute position
// embeddings, positions 0..T-1.

import {
  activation,
  attention,
  cfgNumber,
  cfgString,
  checkIds,
  layerNorm,
  linear,
  mapInPlace,
  numLabelsFor,
  weight64,
  type HfConfig64,
  type Weights64,
} from './linalg64.ts';

/**
 * BertForSequenceClassification logits, (B, num_labels).
 *   emb = LN(word[id] + position[t] + token_type[tt])                     (T, d)
 *   per layer (post-LN):
 *     a = softmax(q k^T / sqrt(D) + mask) v, heads merged; a = dense(a)
 *     h = LN(h + a)
 *     f = output.dense(act(intermediate.dense(h)))
 *     h = LN(h + f)
 *   pooled = tanh(pooler.dense(h[0]))                                     (d)
 *   logits = classifier(pooled)                                           (num_labels)
 * attentionMask[b][s] == 0 removes key s from every query's softmax (HF adds finfo.min).
 * tokenTypeIds defaults to all zeros (HF's buffered token_type_ids).
 */
export function bertSeqCls64(
  config: HfConfig64,
  weights: Weights64,
  ids: readonly (readonly number[])[],
  attentionMask: readonly (readonly number[])[],
  tokenTypeIds?: readonly (readonly number[])[],
): Float64Array {
  const V = cfgNumber(config, 'vocab_size', 30522);
  const d = cfgNumber(config, 'hidden_size', 768);
  const L = cfgNumber(config, 'num_hidden_layers', 12);
  const H = cfgNumber(config, 'num_attention_heads', 12);
  const F = cfgNumber(config, 'intermediate_size', 3072);
  const P = cfgNumber(config, 'max_position_embeddings', 512);
  const TV = cfgNumber(config, 'type_vocab_size', 2);
  const eps = cfgNumber(config, 'layer_norm_eps', 1e-12);
  const act = activation(cfgString(config, 'hidden_act', 'gelu'));
  const posType = cfgString(config, 'position_embedding_type', 'absolute');
  if (posType !== 'absolute') throw new Error(`reference64: position_embedding_type ${posType} not supported`);
  if (d % H !== 0) throw new Error('reference64: hidden_size must be divisible by num_attention_heads');
  const D = d / H;

  const { B, T } = checkIds(ids, V);
  if (T > P) throw new Error(`reference64: sequence length ${T} exceeds max_position_embeddings ${P}`);
  if (attentionMask.length !== B || attentionMask.some((r) => r.length !== T)) {
    throw new Error('reference64: attentionMask must be (B, T)');
  }
  if (tokenTypeIds && (tokenTypeIds.length !== B || tokenTypeIds.some((r) => r.length !== T))) {
    throw new Error('reference64: tokenTypeIds must be (B, T)');
  }

  const e = 'bert.embeddings.';
  const wordEmb = weight64(weights, `${e}word_embeddings.weight`, [V, d]); // (V, d)
  const posEmb = weight64(weights, `${e}position_embeddings.weight`, [P, d]); // (P, d)
  const typeEmb = weight64(weights, `${e}token_type_embeddings.weight`, [TV, d]); // (TV, d)
  const embLnW = weight64(weights, `${e}LayerNorm.weight`, [d]);
  const embLnB = weight64(weights, `${e}LayerNorm.bias`, [d]);

  type Layer = {
    qW: Float64Array; qB: Float64Array; // (d, d), (d)
    kW: Float64Array; kB: Float64Array;
    vW: Float64Array; vB: Float64Array;
    aoW: Float64Array; aoB: Float64Array; // attention.output.dense (d, d)
    aLnW: Float64Array; aLnB: Float64Array; // attention.output.LayerNorm
    iW: Float64Array; iB: Float64Array; // intermediate.dense (F, d), (F)
    oW: Float64Array; oB: Float64Array; // output.dense (d, F), (d)
    oLnW: Float64Array; oLnB: Float64Array; // output.LayerNorm
  };
  const layers: Layer[] = [];
  for (let i = 0; i < L; i++) {
    const p = `bert.encoder.layer.${i}.`;
    layers.push({
      qW: weight64(weights, `${p}attention.self.query.weight`, [d, d]),
      qB: weight64(weights, `${p}attention.self.query.bias`, [d]),
      kW: weight64(weights, `${p}attention.self.key.weight`, [d, d]),
      kB: weight64(weights, `${p}attention.self.key.bias`, [d]),
      vW: weight64(weights, `${p}attention.self.value.weight`, [d, d]),
      vB: weight64(weights, `${p}attention.self.value.bias`, [d]),
      aoW: weight64(weights, `${p}attention.output.dense.weight`, [d, d]),
      aoB: weight64(weights, `${p}attention.output.dense.bias`, [d]),
      aLnW: weight64(weights, `${p}attention.output.LayerNorm.weight`, [d]),
      aLnB: weight64(weights, `${p}attention.output.LayerNorm.bias`, [d]),
      iW: weight64(weights, `${p}intermediate.dense.weight`, [F, d]),
      iB: weight64(weights, `${p}intermediate.dense.bias`, [F]),
      oW: weight64(weights, `${p}output.dense.weight`, [d, F]),
      oB: weight64(weights, `${p}output.dense.bias`, [d]),
      oLnW: weight64(weights, `${p}output.LayerNorm.weight`, [d]),
      oLnB: weight64(weights, `${p}output.LayerNorm.bias`, [d]),
    });
  }
  const poolW = weight64(weights, 'bert.pooler.dense.weight', [d, d]);
  const poolB = weight64(weights, 'bert.pooler.dense.bias', [d]);
  const clsRows = weights.get('classifier.weight')?.shape[0];
  if (clsRows === undefined) throw new Error('reference64: missing weight classifier.weight');
  const C = numLabelsFor(config, clsRows);
  const clsW = weight64(weights, 'classifier.weight', [C, d]); // (C, d)
  const clsB = weight64(weights, 'classifier.bias', [C]);

  const pooled = new Float64Array(B * d); // (B, d)
  for (let b = 0; b < B; b++) {
    // Embeddings: (T, d)
    const emb = new Float64Array(T * d);
    for (let t = 0; t < T; t++) {
      const id = ids[b]![t]!;
      const tt = tokenTypeIds ? tokenTypeIds[b]![t]! : 0;
      if (!Number.isInteger(tt) || tt < 0 || tt >= TV) throw new Error(`reference64: token type ${tt} out of range`);
      for (let j = 0; j < d; j++) emb[t * d + j] = wordEmb[id * d + j]! + posEmb[t * d + j]! + typeEmb[tt * d + j]!;
    }
    let h = layerNorm(emb, T, d, embLnW, embLnB, eps); // (T, d)

    for (const ly of layers) {
      const q = linear(h, T, d, ly.qW, d, ly.qB); // (T, d) = (T, H*D)
      const k = linear(h, T, d, ly.kW, d, ly.kB);
      const v = linear(h, T, d, ly.vW, d, ly.vB);
      const ctx = attention(q, k, v, T, {
        nHeads: H,
        nKvHeads: H,
        headDim: D,
        scale: 1 / Math.sqrt(D),
        causal: false,
        keyMask: attentionMask[b]!,
      }); // (T, d)
      const a = linear(ctx, T, d, ly.aoW, d, ly.aoB); // BertSelfOutput.dense
      for (let i = 0; i < a.length; i++) a[i] += h[i]!;
      h = layerNorm(a, T, d, ly.aLnW, ly.aLnB, eps); // LN(h + attn)

      const inter = linear(h, T, d, ly.iW, F, ly.iB); // (T, F)
      mapInPlace(inter, act);
      const f = linear(inter, T, F, ly.oW, d, ly.oB); // (T, d)
      for (let i = 0; i < f.length; i++) f[i] += h[i]!;
      h = layerNorm(f, T, d, ly.oLnW, ly.oLnB, eps); // LN(h + ffn)
    }

    // BertPooler: tanh(dense(h[0]))  ([CLS] = position 0)
    const p = linear(h.subarray(0, d), 1, d, poolW, d, poolB); // (1, d)
    mapInPlace(p, Math.tanh);
    pooled.set(p, b * d);
  }
  return linear(pooled, B, d, clsW, C, clsB); // (B, C)
}
