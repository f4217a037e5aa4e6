// Independent float64 reference of Hugging Face GPT2Model / GPT2LMHeadModel /
// GPT2ForSequenceClassification (transformers/models/gpt2/modeling_gpt2.py), inference mode
// (dropout off), no attention_mask (right padding is harmless under the causal mask), no cache.

import {
  activation,
  addInPlace,
  attention,
  cfgBool,
  cfgNumber,
  cfgString,
  checkIds,
  checkLengths,
  conv1d,
  hasWeight,
  layerNorm,
  linear,
  mapInPlace,
  numLabelsFor,
  weight64,
  type HfConfig64,
  type Weights64,
} from './linalg64.ts';

interface Gpt2Dims {
  V: number; // vocab_size
  P: number; // n_positions
  d: number; // n_embd
  L: number; // n_layer
  H: number; // n_head
  D: number; // head_dim = n_embd / n_head
  F: number; // n_inner ?? 4 * n_embd
  eps: number; // layer_norm_epsilon
}

function gpt2Dims(config: HfConfig64): Gpt2Dims {
  const d = cfgNumber(config, 'n_embd', 768);
  const H = cfgNumber(config, 'n_head', 12);
  if (d % H !== 0) throw new Error('reference64: n_embd must be divisible by n_head');
  return {
    V: cfgNumber(config, 'vocab_size', 50257),
    P: cfgNumber(config, 'n_positions', 1024),
    d,
    L: cfgNumber(config, 'n_layer', 12),
    H,
    D: d / H,
    F: cfgNumber(config, 'n_inner', 4 * d),
    eps: cfgNumber(config, 'layer_norm_epsilon', 1e-5),
  };
}

/** GPT2Model forward: returns the final hidden states after ln_f, (B, T, n_embd). */
function gpt2Hidden(config: HfConfig64, weights: Weights64, ids: readonly (readonly number[])[]) {
  const dims = gpt2Dims(config);
  const { V, P, d, L, H, D, F, eps } = dims;
  const { B, T } = checkIds(ids, V);
  if (T > P) throw new Error(`reference64: sequence length ${T} exceeds n_positions ${P}`);
  const act = activation(cfgString(config, 'activation_function', 'gelu_new'));
  const scaleAttnWeights = cfgBool(config, 'scale_attn_weights', true);
  const scaleByInverseLayerIdx = cfgBool(config, 'scale_attn_by_inverse_layer_idx', false);
  // reorder_and_upcast_attn only changes float16/bfloat16 rounding; it is a no-op in float64.

  const wte = weight64(weights, 'transformer.wte.weight', [V, d]); // (V, d)
  const wpe = weight64(weights, 'transformer.wpe.weight', [P, d]); // (P, d)

  type Block = {
    ln1w: Float64Array; ln1b: Float64Array; // (d)
    attnW: Float64Array; attnB: Float64Array; // c_attn: Conv1D (d, 3d), (3d)
    projW: Float64Array; projB: Float64Array; // attn.c_proj: Conv1D (d, d), (d)
    ln2w: Float64Array; ln2b: Float64Array; // (d)
    fcW: Float64Array; fcB: Float64Array; // mlp.c_fc: Conv1D (d, F), (F)
    mprojW: Float64Array; mprojB: Float64Array; // mlp.c_proj: Conv1D (F, d), (d)
  };
  const blocks: Block[] = [];
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}.`;
    blocks.push({
      ln1w: weight64(weights, `${p}ln_1.weight`, [d]),
      ln1b: weight64(weights, `${p}ln_1.bias`, [d]),
      attnW: weight64(weights, `${p}attn.c_attn.weight`, [d, 3 * d]),
      attnB: weight64(weights, `${p}attn.c_attn.bias`, [3 * d]),
      projW: weight64(weights, `${p}attn.c_proj.weight`, [d, d]),
      projB: weight64(weights, `${p}attn.c_proj.bias`, [d]),
      ln2w: weight64(weights, `${p}ln_2.weight`, [d]),
      ln2b: weight64(weights, `${p}ln_2.bias`, [d]),
      fcW: weight64(weights, `${p}mlp.c_fc.weight`, [d, F]),
      fcB: weight64(weights, `${p}mlp.c_fc.bias`, [F]),
      mprojW: weight64(weights, `${p}mlp.c_proj.weight`, [F, d]),
      mprojB: weight64(weights, `${p}mlp.c_proj.bias`, [d]),
    });
  }
  const lnfW = weight64(weights, 'transformer.ln_f.weight', [d]);
  const lnfB = weight64(weights, 'transformer.ln_f.bias', [d]);

  const hidden = new Float64Array(B * T * d); // (B, T, d)
  for (let b = 0; b < B; b++) {
    // Embeddings: h[t] = wte[ids[b][t]] + wpe[t]           (T, d)
    let h: Float64Array = new Float64Array(T * d);
    for (let t = 0; t < T; t++) {
      const id = ids[b]![t]!;
      for (let j = 0; j < d; j++) h[t * d + j] = wte[id * d + j]! + wpe[t * d + j]!;
    }

    for (let li = 0; li < L; li++) {
      const blk = blocks[li]!;
      // --- attention sub-block (pre-LN) ---
      const x1 = layerNorm(h, T, d, blk.ln1w, blk.ln1b, eps); // (T, d)
      const qkv = conv1d(x1, T, d, blk.attnW, 3 * d, blk.attnB); // (T, 3d) = [q | k | v] along last dim
      const q = new Float64Array(T * d); // (T, d) = (T, H*D)
      const k = new Float64Array(T * d);
      const v = new Float64Array(T * d);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < d; j++) {
          q[t * d + j] = qkv[t * 3 * d + j]!;
          k[t * d + j] = qkv[t * 3 * d + d + j]!;
          v[t * d + j] = qkv[t * 3 * d + 2 * d + j]!;
        }
      }
      let scale = scaleAttnWeights ? 1 / Math.sqrt(D) : 1;
      if (scaleByInverseLayerIdx) scale /= li + 1;
      const ctx = attention(q, k, v, T, { nHeads: H, nKvHeads: H, headDim: D, scale, causal: true }); // (T, d)
      const attnOut = conv1d(ctx, T, d, blk.projW, d, blk.projB); // (T, d)
      addInPlace(h, attnOut);

      // --- MLP sub-block (pre-LN) ---
      const x2 = layerNorm(h, T, d, blk.ln2w, blk.ln2b, eps); // (T, d)
      const f = conv1d(x2, T, d, blk.fcW, F, blk.fcB); // (T, F)
      mapInPlace(f, act);
      const mlpOut = conv1d(f, T, F, blk.mprojW, d, blk.mprojB); // (T, d)
      addInPlace(h, mlpOut);
    }
    h = layerNorm(h, T, d, lnfW, lnfB, eps); // ln_f, (T, d)
    hidden.set(h, b * T * d);
  }
  return { hidden, B, T, dims };
}

/**
 * GPT2LMHeadModel logits, (B, T, V) row-major. lm_head has no bias and is tied to
 * transformer.wte.weight; an explicit `lm_head.weight` (V, d) in the map takes precedence.
 */
export function gpt2CausalLM64(config: HfConfig64, weights: Weights64, ids: readonly (readonly number[])[]): Float64Array {
  const { hidden, B, T, dims } = gpt2Hidden(config, weights, ids);
  const { V, d } = dims;
  const head = hasWeight(weights, 'lm_head.weight')
    ? weight64(weights, 'lm_head.weight', [V, d])
    : weight64(weights, 'transformer.wte.weight', [V, d]);
  return linear(hidden, B * T, d, head, V); // (B*T, V) == (B, T, V)
}

/**
 * GPT2ForSequenceClassification logits, (B, num_labels): score (Linear d -> num_labels, no bias)
 * applied to the final hidden state at position lengths[b] - 1 (HF pools at the last non-pad token;
 * the caller supplies that index explicitly).
 */
export function gpt2SeqCls64(
  config: HfConfig64,
  weights: Weights64,
  ids: readonly (readonly number[])[],
  lengths: readonly number[],
): Float64Array {
  const { hidden, B, T, dims } = gpt2Hidden(config, weights, ids);
  checkLengths(lengths, B, T);
  const { d } = dims;
  const st = weights.get('score.weight');
  if (!st) throw new Error('reference64: missing weight score.weight');
  const C = numLabelsFor(config, st.shape[0]!);
  const score = weight64(weights, 'score.weight', [C, d]); // (C, d)
  const pooled = new Float64Array(B * d); // (B, d)
  for (let b = 0; b < B; b++) pooled.set(hidden.subarray((b * T + lengths[b]! - 1) * d, (b * T + lengths[b]!) * d), b * d);
  return linear(pooled, B, d, score, C); // (B, C)
}
