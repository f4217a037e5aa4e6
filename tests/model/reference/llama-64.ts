// Independent float64 reference of Hugging Face LlamaModel / LlamaForCausalLM /
// LlamaForSequenceClassification (transformers/models/llama/modeling_llama.py), inference mode,
// no attention_mask (right padding is harmless under the causal mask), positions 0..T-1, no cache.

import {
  activation,
  addInPlace,
  attention,
  cfgBool,
  cfgNumber,
  cfgObject,
  cfgString,
  checkIds,
  checkLengths,
  hasWeight,
  linear,
  numLabelsFor,
  rmsNorm,
  weight64,
  type HfConfig64,
  type Weights64,
} from './linalg64.ts';

// ---------------------------------------------------------------------------------------------
// Rotary position embedding (LlamaRotaryEmbedding + apply_rotary_pos_emb)
// ---------------------------------------------------------------------------------------------

/**
 * inv_freq (head_dim/2) as in transformers.modeling_rope_utils:
 *   default: inv_freq[i] = 1 / rope_theta^(2i / head_dim)
 *   linear:  default / factor
 *   llama3:  _compute_llama3_parameters (wavelength-dependent smoothing)
 * rope_theta / rope_scaling are read from the top level (transformers v4) or from
 * `rope_parameters` (transformers v5). Every supported type has attention_factor 1.
 */
export function ropeInvFreq(config: HfConfig64, headDim: number): Float64Array {
  if (headDim % 2 !== 0) throw new Error('reference64: head_dim must be even for RoPE');
  const params = cfgObject(config, 'rope_parameters');
  const scaling = cfgObject(config, 'rope_scaling') ?? params;
  const theta =
    typeof params?.['rope_theta'] === 'number' ? (params['rope_theta'] as number) : cfgNumber(config, 'rope_theta', 10000);
  const partial = cfgNumber(config, 'partial_rotary_factor', 1);
  if (partial !== 1) throw new Error('reference64: partial_rotary_factor != 1 is not supported for Llama');

  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);

  const ropeType = String(scaling?.['rope_type'] ?? scaling?.['type'] ?? 'default');
  const num = (key: string): number => {
    const v = scaling?.[key];
    if (typeof v !== 'number') throw new Error(`reference64: rope scaling ${ropeType} needs numeric ${key}`);
    return v;
  };
  switch (ropeType) {
    case 'default':
      return inv;
    case 'linear': {
      const factor = num('factor');
      return inv.map((f) => f / factor);
    }
    case 'llama3': {
      const factor = num('factor');
      const lowFreqFactor = num('low_freq_factor');
      const highFreqFactor = num('high_freq_factor');
      const oldContextLen = num('original_max_position_embeddings');
      const lowFreqWavelen = oldContextLen / lowFreqFactor;
      const highFreqWavelen = oldContextLen / highFreqFactor;
      return inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        // long wavelengths (low frequency) are scaled down by `factor`
        const scaled = wavelen > lowFreqWavelen ? f / factor : f;
        const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
        if (!isMedium) return scaled;
        const smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        return ((1 - smooth) * scaled) / factor + smooth * scaled;
      });
    }
    default:
      throw new Error(`reference64: unsupported rope type ${JSON.stringify(ropeType)}`);
  }
}

/**
 * apply_rotary_pos_emb with the HF rotate_half convention, in place, for x (T, nHeads*headDim)
 * at positions 0..T-1 (or `positions`):
 *   freqs = pos * inv_freq (D/2);  emb = cat(freqs, freqs) (D);  cos = cos(emb), sin = sin(emb)
 *   rotate_half(x) = cat(-x[D/2:], x[:D/2])
 *   x' = x * cos + rotate_half(x) * sin
 * i.e. for i < D/2, the pair (x[i], x[i+D/2]) is rotated by angle pos*inv_freq[i]:
 *   x'[i]       = x[i] cos - x[i+D/2] sin
 *   x'[i+D/2]   = x[i+D/2] cos + x[i] sin
 */
export function applyRope(
  x: Float64Array,
  T: number,
  nHeads: number,
  headDim: number,
  invFreq: Float64Array,
  positions?: readonly number[],
): void {
  const half = headDim / 2;
  const stride = nHeads * headDim;
  const rotated = new Float64Array(headDim);
  for (let t = 0; t < T; t++) {
    const pos = positions ? positions[t]! : t;
    for (let h = 0; h < nHeads; h++) {
      const o = t * stride + h * headDim;
      for (let j = 0; j < headDim; j++) {
        const angle = pos * invFreq[j % half]!; // emb = cat(freqs, freqs)
        const rh = j < half ? -x[o + j + half]! : x[o + j - half]!; // rotate_half(x)[j]
        rotated[j] = x[o + j]! * Math.cos(angle) + rh * Math.sin(angle);
      }
      x.set(rotated, o);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

interface LlamaDims {
  V: number; // vocab_size
  d: number; // hidden_size
  L: number; // num_hidden_layers
  H: number; // num_attention_heads
  Hkv: number; // num_key_value_heads
  D: number; // head_dim
  F: number; // intermediate_size
  eps: number; // rms_norm_eps
}

function llamaDims(config: HfConfig64): LlamaDims {
  const d = cfgNumber(config, 'hidden_size', 4096);
  const H = cfgNumber(config, 'num_attention_heads', 32);
  return {
    V: cfgNumber(config, 'vocab_size', 32000),
    d,
    L: cfgNumber(config, 'num_hidden_layers', 32),
    H,
    Hkv: cfgNumber(config, 'num_key_value_heads', H),
    D: cfgNumber(config, 'head_dim', Math.floor(d / H)),
    F: cfgNumber(config, 'intermediate_size', 11008),
    eps: cfgNumber(config, 'rms_norm_eps', 1e-6),
  };
}

/** LlamaModel forward: final hidden states after model.norm, (B, T, hidden_size). */
function llamaHidden(config: HfConfig64, weights: Weights64, ids: readonly (readonly number[])[]) {
  const dims = llamaDims(config);
  const { V, d, L, H, Hkv, D, F, eps } = dims;
  const { B, T } = checkIds(ids, V);
  const act = activation(cfgString(config, 'hidden_act', 'silu'));
  const attnBias = cfgBool(config, 'attention_bias', false);
  const mlpBias = cfgBool(config, 'mlp_bias', false);
  const invFreq = ropeInvFreq(config, D);
  const scale = 1 / Math.sqrt(D); // LlamaAttention.scaling = head_dim ** -0.5

  const embed = weight64(weights, 'model.embed_tokens.weight', [V, d]); // (V, d)
  // Biases exist only when the config flag is set; HF ignores stray bias tensors otherwise.
  const bias = (enabled: boolean, name: string, n: number) => (enabled ? weight64(weights, name, [n]) : undefined);

  type Layer = {
    inNorm: Float64Array; // (d)
    qW: Float64Array; qB?: Float64Array; // (H*D, d), (H*D)
    kW: Float64Array; kB?: Float64Array; // (Hkv*D, d), (Hkv*D)
    vW: Float64Array; vB?: Float64Array; // (Hkv*D, d), (Hkv*D)
    oW: Float64Array; oB?: Float64Array; // (d, H*D), (d)
    postNorm: Float64Array; // (d)
    gateW: Float64Array; gateB?: Float64Array; // (F, d), (F)
    upW: Float64Array; upB?: Float64Array; // (F, d), (F)
    downW: Float64Array; downB?: Float64Array; // (d, F), (d)
  };
  const layers: Layer[] = [];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    layers.push({
      inNorm: weight64(weights, `${p}input_layernorm.weight`, [d]),
      qW: weight64(weights, `${p}self_attn.q_proj.weight`, [H * D, d]),
      qB: bias(attnBias, `${p}self_attn.q_proj.bias`, H * D),
      kW: weight64(weights, `${p}self_attn.k_proj.weight`, [Hkv * D, d]),
      kB: bias(attnBias, `${p}self_attn.k_proj.bias`, Hkv * D),
      vW: weight64(weights, `${p}self_attn.v_proj.weight`, [Hkv * D, d]),
      vB: bias(attnBias, `${p}self_attn.v_proj.bias`, Hkv * D),
      oW: weight64(weights, `${p}self_attn.o_proj.weight`, [d, H * D]),
      oB: bias(attnBias, `${p}self_attn.o_proj.bias`, d),
      postNorm: weight64(weights, `${p}post_attention_layernorm.weight`, [d]),
      gateW: weight64(weights, `${p}mlp.gate_proj.weight`, [F, d]),
      gateB: bias(mlpBias, `${p}mlp.gate_proj.bias`, F),
      upW: weight64(weights, `${p}mlp.up_proj.weight`, [F, d]),
      upB: bias(mlpBias, `${p}mlp.up_proj.bias`, F),
      downW: weight64(weights, `${p}mlp.down_proj.weight`, [d, F]),
      downB: bias(mlpBias, `${p}mlp.down_proj.bias`, d),
    });
  }
  const finalNorm = weight64(weights, 'model.norm.weight', [d]);

  const hidden = new Float64Array(B * T * d); // (B, T, d)
  for (let b = 0; b < B; b++) {
    // Token embeddings only (no absolute positions, no scaling): (T, d)
    let h: Float64Array = new Float64Array(T * d);
    for (let t = 0; t < T; t++) h.set(embed.subarray(ids[b]![t]! * d, (ids[b]![t]! + 1) * d), t * d);

    for (const ly of layers) {
      // --- self-attention (pre-RMSNorm) ---
      const x1 = rmsNorm(h, T, d, ly.inNorm, eps); // (T, d)
      const q = linear(x1, T, d, ly.qW, H * D, ly.qB); // (T, H*D)
      const k = linear(x1, T, d, ly.kW, Hkv * D, ly.kB); // (T, Hkv*D)
      const v = linear(x1, T, d, ly.vW, Hkv * D, ly.vB); // (T, Hkv*D)
      applyRope(q, T, H, D, invFreq);
      applyRope(k, T, Hkv, D, invFreq);
      const ctx = attention(q, k, v, T, { nHeads: H, nKvHeads: Hkv, headDim: D, scale, causal: true }); // (T, H*D)
      addInPlace(h, linear(ctx, T, H * D, ly.oW, d, ly.oB)); // o_proj, residual

      // --- MLP (pre-RMSNorm): down(act(gate(x)) * up(x)) ---
      const x2 = rmsNorm(h, T, d, ly.postNorm, eps); // (T, d)
      const gate = linear(x2, T, d, ly.gateW, F, ly.gateB); // (T, F)
      const up = linear(x2, T, d, ly.upW, F, ly.upB); // (T, F)
      for (let i = 0; i < gate.length; i++) gate[i] = act(gate[i]!) * up[i]!;
      addInPlace(h, linear(gate, T, F, ly.downW, d, ly.downB)); // down_proj, residual
    }
    h = rmsNorm(h, T, d, finalNorm, eps); // model.norm, (T, d)
    hidden.set(h, b * T * d);
  }
  return { hidden, B, T, dims };
}

/**
 * LlamaForCausalLM logits, (B, T, V). Uses lm_head.weight (V, d) if present, else
 * model.embed_tokens.weight when config.tie_word_embeddings (HF Llama default: false).
 */
export function llamaCausalLM64(config: HfConfig64, weights: Weights64, ids: readonly (readonly number[])[]): Float64Array {
  const { hidden, B, T, dims } = llamaHidden(config, weights, ids);
  const { V, d } = dims;
  let head: Float64Array;
  if (hasWeight(weights, 'lm_head.weight')) head = weight64(weights, 'lm_head.weight', [V, d]);
  else if (cfgBool(config, 'tie_word_embeddings', false)) head = weight64(weights, 'model.embed_tokens.weight', [V, d]);
  else throw new Error('reference64: lm_head.weight missing and tie_word_embeddings is false');
  return linear(hidden, B * T, d, head, V); // (B*T, V) == (B, T, V)
}

/**
 * LlamaForSequenceClassification logits, (B, num_labels): score (Linear, no bias) applied to
 * the final hidden state at position lengths[b] - 1.
 */
export function llamaSeqCls64(
  config: HfConfig64,
  weights: Weights64,
  ids: readonly (readonly number[])[],
  lengths: readonly number[],
): Float64Array {
  const { hidden, B, T, dims } = llamaHidden(config, weights, ids);
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
