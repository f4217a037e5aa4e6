// Self-checks of the float64 reference against closed forms, hand-worked examples and invariants.
// Nothing here imports the project's tfjs code: the reference must stand on its own.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  applyRope,
  bertSeqCls64,
  erf,
  geluErf,
  geluTanh,
  gpt2CausalLM64,
  gpt2SeqCls64,
  llamaCausalLM64,
  llamaSeqCls64,
  ropeInvFreq,
  type Tensor64Source,
} from './forward64.ts';
import { rng } from '../../rng.ts';

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

type W = Map<string, Tensor64Source>;

function t(shape: number[], values: number[]): Tensor64Source {
  assert.equal(values.length, shape.reduce((a, b) => a * b, 1), `bad literal for shape [${shape}]`);
  return { shape, data: Float64Array.from(values) };
}
const zeros = (shape: number[]) => t(shape, new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0));
const ones = (shape: number[]) => t(shape, new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(1));

function randT(r: () => number, shape: number[], scale = 0.5, offset = 0): Tensor64Source {
  const n = shape.reduce((a, b) => a * b, 1);
  // Float32Array on purpose: the reference must accept the dtype the project stores.
  return { shape, data: Float32Array.from({ length: n }, () => offset + scale * (2 * r() - 1)) };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, msg = ''): void {
  assert.equal(actual.length, expected.length, `${msg} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Number.isFinite(a), `${msg} [${i}] not finite: ${a}`);
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${msg} [${i}]: ${a} vs ${e} (tol ${tol})`);
  }
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
/** Slice positions [t0, t1) of a (B=1, T, V) tensor. */
function positions(x: Float64Array, V: number, t0: number, t1: number): Float64Array {
  return x.slice(t0 * V, t1 * V);
}

/** LayerNorm of a 2-vector [a, b] with unit weight, zero bias: [n, -n], n = (δ/2)/sqrt(δ²/4 + eps), δ = a - b. */
function ln2(a: number, b: number, eps: number): [number, number] {
  const d = a - b;
  const n = d / 2 / Math.sqrt((d * d) / 4 + eps);
  return [n, -n];
}

// ---------------------------------------------------------------------------------------------
// random model builders (for invariants only)
// ---------------------------------------------------------------------------------------------

const gpt2Cfg = { model_type: 'gpt2', vocab_size: 11, n_positions: 8, n_embd: 8, n_layer: 2, n_head: 2, layer_norm_epsilon: 1e-5 };
function gpt2Random(seed: number, cfg = gpt2Cfg): W {
  const r = rng(seed);
  const { vocab_size: V, n_positions: P, n_embd: d, n_layer: L } = cfg;
  const w: W = new Map();
  w.set('transformer.wte.weight', randT(r, [V, d]));
  w.set('transformer.wpe.weight', randT(r, [P, d]));
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}.`;
    w.set(`${p}ln_1.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}ln_1.bias`, randT(r, [d], 0.1));
    w.set(`${p}attn.c_attn.weight`, randT(r, [d, 3 * d]));
    w.set(`${p}attn.c_attn.bias`, randT(r, [3 * d], 0.1));
    w.set(`${p}attn.c_proj.weight`, randT(r, [d, d]));
    w.set(`${p}attn.c_proj.bias`, randT(r, [d], 0.1));
    w.set(`${p}ln_2.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}ln_2.bias`, randT(r, [d], 0.1));
    w.set(`${p}mlp.c_fc.weight`, randT(r, [d, 4 * d]));
    w.set(`${p}mlp.c_fc.bias`, randT(r, [4 * d], 0.1));
    w.set(`${p}mlp.c_proj.weight`, randT(r, [4 * d, d]));
    w.set(`${p}mlp.c_proj.bias`, randT(r, [d], 0.1));
  }
  w.set('transformer.ln_f.weight', randT(r, [d], 0.2, 1));
  w.set('transformer.ln_f.bias', randT(r, [d], 0.1));
  return w;
}

interface LlamaTestCfg {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  attention_bias?: boolean;
  mlp_bias?: boolean;
  tie_word_embeddings?: boolean;
}
const llamaCfg: LlamaTestCfg = {
  vocab_size: 13,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 100,
};
function llamaRandom(seed: number, cfg: LlamaTestCfg = llamaCfg): W {
  const r = rng(seed);
  const { vocab_size: V, hidden_size: d, intermediate_size: F, num_hidden_layers: L } = cfg;
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads;
  const D = cfg.head_dim ?? d / H;
  const w: W = new Map();
  w.set('model.embed_tokens.weight', randT(r, [V, d], 1));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    w.set(`${p}input_layernorm.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}self_attn.q_proj.weight`, randT(r, [H * D, d]));
    w.set(`${p}self_attn.k_proj.weight`, randT(r, [Hkv * D, d]));
    w.set(`${p}self_attn.v_proj.weight`, randT(r, [Hkv * D, d]));
    w.set(`${p}self_attn.o_proj.weight`, randT(r, [d, H * D]));
    if (cfg.attention_bias) {
      w.set(`${p}self_attn.q_proj.bias`, randT(r, [H * D], 0.2));
      w.set(`${p}self_attn.k_proj.bias`, randT(r, [Hkv * D], 0.2));
      w.set(`${p}self_attn.v_proj.bias`, randT(r, [Hkv * D], 0.2));
      w.set(`${p}self_attn.o_proj.bias`, randT(r, [d], 0.2));
    }
    w.set(`${p}post_attention_layernorm.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}mlp.gate_proj.weight`, randT(r, [F, d]));
    w.set(`${p}mlp.up_proj.weight`, randT(r, [F, d]));
    w.set(`${p}mlp.down_proj.weight`, randT(r, [d, F]));
    if (cfg.mlp_bias) {
      w.set(`${p}mlp.gate_proj.bias`, randT(r, [F], 0.2));
      w.set(`${p}mlp.up_proj.bias`, randT(r, [F], 0.2));
      w.set(`${p}mlp.down_proj.bias`, randT(r, [d], 0.2));
    }
  }
  w.set('model.norm.weight', randT(r, [d], 0.2, 1));
  if (!cfg.tie_word_embeddings) w.set('lm_head.weight', randT(r, [V, d]));
  return w;
}

const bertCfg = {
  model_type: 'bert',
  vocab_size: 17,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 16,
  max_position_embeddings: 10,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_act: 'gelu',
  num_labels: 3,
};
function bertRandom(seed: number, cfg = bertCfg): W {
  const r = rng(seed);
  const { vocab_size: V, hidden_size: d, intermediate_size: F, num_hidden_layers: L } = cfg;
  const w: W = new Map();
  w.set('bert.embeddings.word_embeddings.weight', randT(r, [V, d], 1));
  w.set('bert.embeddings.position_embeddings.weight', randT(r, [cfg.max_position_embeddings, d], 0.5));
  w.set('bert.embeddings.token_type_embeddings.weight', randT(r, [cfg.type_vocab_size, d], 0.5));
  w.set('bert.embeddings.LayerNorm.weight', randT(r, [d], 0.2, 1));
  w.set('bert.embeddings.LayerNorm.bias', randT(r, [d], 0.1));
  for (let i = 0; i < L; i++) {
    const p = `bert.encoder.layer.${i}.`;
    for (const m of ['query', 'key', 'value']) {
      w.set(`${p}attention.self.${m}.weight`, randT(r, [d, d]));
      w.set(`${p}attention.self.${m}.bias`, randT(r, [d], 0.1));
    }
    w.set(`${p}attention.output.dense.weight`, randT(r, [d, d]));
    w.set(`${p}attention.output.dense.bias`, randT(r, [d], 0.1));
    w.set(`${p}attention.output.LayerNorm.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}attention.output.LayerNorm.bias`, randT(r, [d], 0.1));
    w.set(`${p}intermediate.dense.weight`, randT(r, [F, d]));
    w.set(`${p}intermediate.dense.bias`, randT(r, [F], 0.1));
    w.set(`${p}output.dense.weight`, randT(r, [d, F]));
    w.set(`${p}output.dense.bias`, randT(r, [d], 0.1));
    w.set(`${p}output.LayerNorm.weight`, randT(r, [d], 0.2, 1));
    w.set(`${p}output.LayerNorm.bias`, randT(r, [d], 0.1));
  }
  w.set('bert.pooler.dense.weight', randT(r, [d, d], 1));
  w.set('bert.pooler.dense.bias', randT(r, [d], 0.1));
  w.set('classifier.weight', randT(r, [cfg.num_labels, d], 1));
  w.set('classifier.bias', randT(r, [cfg.num_labels], 0.1));
  return w;
}

// ---------------------------------------------------------------------------------------------
// erf / activations
// ---------------------------------------------------------------------------------------------

describe('reference64: erf and activations', () => {
  it('erf matches known values to 1e-12', () => {
    const known: [number, number][] = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [1.5, 0.9661051464753108],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [5.9, 0.9999999999999999],
      [7, 1],
    ];
    for (const [x, e] of known) {
      assert.ok(Math.abs(erf(x) - e) < 1e-12, `erf(${x}) = ${erf(x)}, want ${e}`);
      assert.ok(Math.abs(erf(-x) + e) < 1e-12, `erf(${-x}) = ${erf(-x)}, want ${-e}`);
    }
    assert.ok(Number.isNaN(erf(NaN)));
  });

  it('exact GELU is x*Phi(x); tanh GELU follows its closed form', () => {
    // Phi(1) = 0.8413447460685429, Phi(-1) = 0.15865525393145707
    assert.ok(Math.abs(geluErf(1) - 0.8413447460685429) < 1e-12);
    assert.ok(Math.abs(geluErf(-1) + 0.15865525393145707) < 1e-12);
    // gelu_new(1) = 0.5 (1 + tanh(sqrt(2/pi) * 1.044715))
    assert.ok(Math.abs(geluTanh(1) - 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715))) < 1e-15);
    // the two GELUs agree to ~1e-3, not exactly (so a mixup is detectable at 1e-4)
    const gap = Math.abs(geluErf(1.5) - geluTanh(1.5));
    assert.ok(gap > 1e-5 && gap < 1e-3, `gap ${gap}`);
  });
});

// ---------------------------------------------------------------------------------------------
// GPT-2
// ---------------------------------------------------------------------------------------------

describe('reference64: GPT-2', () => {
  it('zero blocks, 1 token, d=2: logits = LN(wte[id] + wpe[0]) @ wte^T', () => {
    const cfg = { vocab_size: 3, n_positions: 2, n_embd: 2, n_layer: 1, n_head: 1 }; // eps default 1e-5
    const w: W = new Map([
      ['transformer.wte.weight', t([3, 2], [1, 0, 0, 2, 3, 1])],
      ['transformer.wpe.weight', t([2, 2], [0.5, -0.5, 9, 9])],
      ['transformer.h.0.ln_1.weight', ones([2])],
      ['transformer.h.0.ln_1.bias', zeros([2])],
      ['transformer.h.0.attn.c_attn.weight', zeros([2, 6])],
      ['transformer.h.0.attn.c_attn.bias', zeros([6])],
      ['transformer.h.0.attn.c_proj.weight', zeros([2, 2])],
      ['transformer.h.0.attn.c_proj.bias', zeros([2])],
      ['transformer.h.0.ln_2.weight', ones([2])],
      ['transformer.h.0.ln_2.bias', zeros([2])],
      ['transformer.h.0.mlp.c_fc.weight', zeros([2, 8])],
      ['transformer.h.0.mlp.c_fc.bias', zeros([8])],
      ['transformer.h.0.mlp.c_proj.weight', zeros([8, 2])],
      ['transformer.h.0.mlp.c_proj.bias', zeros([2])],
      ['transformer.ln_f.weight', ones([2])],
      ['transformer.ln_f.bias', zeros([2])],
    ]);
    // h = wte[0] + wpe[0] = [1.5, -0.5]; mean 0.5, centred [1, -1], var 1
    // ln_f(h) = [1, -1] / sqrt(1 + 1e-5); logits[v] = (wte[v,0] - wte[v,1]) / sqrt(1 + 1e-5) = [1, -2, 2] / ...
    const z = 1 / Math.sqrt(1 + 1e-5);
    assertClose(gpt2CausalLM64(cfg, w, [[0]]), [z, -2 * z, 2 * z], 1e-14);

    // An explicit lm_head.weight takes precedence over the tied wte.
    w.set('lm_head.weight', t([3, 2], [1, 1, 2, 0, 0, -1]));
    assertClose(gpt2CausalLM64(cfg, w, [[0]]), [0, 2 * z, z], 1e-14);
  });

  it('hand-worked 1-layer, d=2, T=2 example (eps=1 so LayerNorm is sensitive)', () => {
    const eps = 1;
    const cfg = { vocab_size: 3, n_positions: 2, n_embd: 2, n_layer: 1, n_head: 1, n_inner: 2, layer_norm_epsilon: eps };
    const w: W = new Map([
      ['transformer.wte.weight', t([3, 2], [1, 0, 0, 3, 2, 1])],
      ['transformer.wpe.weight', t([2, 2], [0.5, -0.5, 0, 1])],
      ['transformer.h.0.ln_1.weight', ones([2])],
      ['transformer.h.0.ln_1.bias', zeros([2])],
      // Conv1D [in, out]; out columns: q0 q1 | k0 k1 | v0 v1.  Wq = I, Wk = diag(2, 1), Wv = diag(1, 2)
      ['transformer.h.0.attn.c_attn.weight', t([2, 6], [1, 0, 2, 0, 1, 0, /* row 1 */ 0, 1, 0, 1, 0, 2])],
      ['transformer.h.0.attn.c_attn.bias', t([6], [0, 0, 0, 0, 0.5, 0])],
      // out = [c0 + c1, c1] + [0, 0.1]
      ['transformer.h.0.attn.c_proj.weight', t([2, 2], [1, 0, 1, 1])],
      ['transformer.h.0.attn.c_proj.bias', t([2], [0, 0.1])],
      ['transformer.h.0.ln_2.weight', ones([2])],
      ['transformer.h.0.ln_2.bias', t([2], [0.5, 0])],
      ['transformer.h.0.mlp.c_fc.weight', t([2, 2], [1, 0, 0, 1])],
      ['transformer.h.0.mlp.c_fc.bias', zeros([2])],
      ['transformer.h.0.mlp.c_proj.weight', t([2, 2], [1, 0, 0, -1])],
      ['transformer.h.0.mlp.c_proj.bias', zeros([2])],
      ['transformer.ln_f.weight', t([2], [1, 3])],
      ['transformer.ln_f.bias', t([2], [0.1, 0])],
    ]);
    // Step 1, embeddings (ids [0, 1]):  x0 = [1,0]+[0.5,-0.5] = [1.5,-0.5];  x1 = [0,3]+[0,1] = [0,4]
    const x = [[1.5, -0.5], [0, 4]];
    // Step 2, ln_1: a0 = [n, -n] with δ=2: n = 1/sqrt(2) = 0.70711;  a1: δ=-4: n = -2/sqrt(5) = -0.89443
    const a = x.map(([p, q]) => ln2(p!, q!, eps));
    // Step 3, q = a, k = [2 a_0, a_1], v = [a_0 + 0.5, 2 a_1]
    const q = a;
    const k = a.map(([p, r]) => [2 * p, r]);
    const v = a.map(([p, r]) => [p + 0.5, 2 * r]);
    // Step 4, causal attention: ctx0 = v0;  t=1: s10 = q1.k0/sqrt2 = -1.34164, s11 = q1.k1/sqrt2 = 1.69706
    //   p11 = 1/(1+exp(s10-s11)) = 0.95429;  ctx1 = p10 v0 + p11 v1 = [-0.32122, 1.64245]
    const s10 = (q[1]![0]! * k[0]![0]! + q[1]![1]! * k[0]![1]!) / Math.SQRT2;
    const s11 = (q[1]![0]! * k[1]![0]! + q[1]![1]! * k[1]![1]!) / Math.SQRT2;
    const p11 = 1 / (1 + Math.exp(s10 - s11));
    const p10 = 1 - p11;
    const ctx = [v[0]!, [p10 * v[0]![0]! + p11 * v[1]![0]!, p10 * v[0]![1]! + p11 * v[1]![1]!]];
    // Step 5, c_proj + residual: h = x + [c0 + c1, c1 + 0.1] -> h0 = [1.29289, -1.81421], h1 = [1.32122, 5.74245]
    let h = x.map((xi, i) => [xi[0]! + ctx[i]![0]! + ctx[i]![1]!, xi[1]! + ctx[i]![1]! + 0.1]);
    // Step 6, ln_2 (bias [0.5, 0]) -> m0 = [1.34086, -0.84086], m1 = [-0.41111, 0.91111]
    const m = h.map(([p, r]) => {
      const [n0, n1] = ln2(p!, r!, eps);
      return [n0 + 0.5, n1];
    });
    // Step 7, MLP: c_fc = I, gelu_new, c_proj = diag(1, -1); residual
    //   -> h0 = [2.51287, -1.64577], h1 = [1.18123, 4.99647]
    h = h.map((hi, i) => [hi[0]! + geluTanh(m[i]![0]!), hi[1]! - geluTanh(m[i]![1]!)]);
    // Step 8, ln_f (weight [1, 3], bias [0.1, 0]) -> f0 = [1.00120, -2.70359], f1 = [-0.78568, 2.65705]
    const f = h.map(([p, r]) => {
      const [n0, n1] = ln2(p!, r!, eps);
      return [n0 + 0.1, 3 * n1];
    });
    // Step 9, tied lm_head: logits[t][v] = f_t . wte[v]
    const wte = [[1, 0], [0, 3], [2, 1]];
    const expected = f.flatMap((ft) => wte.map((e) => ft[0]! * e[0]! + ft[1]! * e[1]!));
    // Same numbers from an independent scalar script:
    const literal = [1.0011967696849013, -8.110770927164111, -0.7011967696849011, -0.7856845002498759, 7.971160502248884, 1.085684500249876];
    assertClose(expected, literal, 1e-13, 'hand steps vs literal');
    assertClose(gpt2CausalLM64(cfg, w, [[0, 1]]), expected, 1e-13, 'gpt2');
  });

  it('is causal: changing a later token leaves earlier logits unchanged', () => {
    const w = gpt2Random(1);
    const V = gpt2Cfg.vocab_size;
    const a = gpt2CausalLM64(gpt2Cfg, w, [[1, 4, 7, 2, 9]]);
    const b = gpt2CausalLM64(gpt2Cfg, w, [[1, 4, 7, 5, 9]]);
    assert.deepEqual(positions(a, V, 0, 3), positions(b, V, 0, 3));
    assert.ok(maxAbsDiff(positions(a, V, 3, 5), positions(b, V, 3, 5)) > 1e-3, 'later positions should change');
  });

  it('batch rows are independent and laid out (B, T, V)', () => {
    const w = gpt2Random(2);
    const V = gpt2Cfg.vocab_size;
    const rows = [[1, 2, 3, 4], [10, 0, 0, 0]];
    const both = gpt2CausalLM64(gpt2Cfg, w, rows);
    assert.equal(both.length, 2 * 4 * V);
    assertClose(both.slice(0, 4 * V), gpt2CausalLM64(gpt2Cfg, w, [rows[0]!]), 0);
    assertClose(both.slice(4 * V), gpt2CausalLM64(gpt2Cfg, w, [rows[1]!]), 0);
  });

  it('position embeddings matter; n_head matters', () => {
    const w = gpt2Random(3);
    const a = gpt2CausalLM64(gpt2Cfg, w, [[3, 3, 3]]);
    const V = gpt2Cfg.vocab_size;
    assert.ok(maxAbsDiff(positions(a, V, 0, 1), positions(a, V, 1, 2)) > 1e-3);
    const oneHead = gpt2CausalLM64({ ...gpt2Cfg, n_head: 1 }, w, [[3, 5, 7]]);
    const twoHeads = gpt2CausalLM64(gpt2Cfg, w, [[3, 5, 7]]);
    assert.ok(maxAbsDiff(oneHead, twoHeads) > 1e-4);
  });

  it('sequence classification pools the final hidden state at lengths[b]-1', () => {
    const w = gpt2Random(4);
    const d = gpt2Cfg.n_embd;
    const V = gpt2Cfg.vocab_size;
    // score = first 2 rows of wte, so seqCls logits must equal LM logits[b, len-1, 0:2].
    const wte = w.get('transformer.wte.weight')!;
    w.set('score.weight', { shape: [2, d], data: wte.data.slice(0, 2 * d) });
    const ids = [[5, 6, 7, 8], [4, 3, 0, 0]];
    const lengths = [4, 2];
    const cls = gpt2SeqCls64({ ...gpt2Cfg, num_labels: 2 }, w, ids, lengths);
    const lm = gpt2CausalLM64(gpt2Cfg, w, ids);
    const T = 4;
    const expected = [0, 1].flatMap((b) => [0, 1].map((c) => lm[(b * T + lengths[b]! - 1) * V + c]!));
    assertClose(cls, expected, 1e-12);
    assert.throws(() => gpt2SeqCls64({ ...gpt2Cfg, num_labels: 3 }, w, ids, lengths), /labels/);
  });
});

// ---------------------------------------------------------------------------------------------
// Llama
// ---------------------------------------------------------------------------------------------

describe('reference64: Llama', () => {
  it('RoPE uses the rotate_half pairing (i, i + D/2) and inv_freq = theta^(-2i/D)', () => {
    // D = 4, theta = 100 -> inv_freq = [1, 100^(-1/2)] = [1, 0.1]
    const inv = ropeInvFreq({ rope_theta: 100 }, 4);
    assertClose(inv, [1, 0.1], 1e-15);
    assertClose(ropeInvFreq({}, 4), [1, 0.01], 1e-15); // default theta 10000
    // At position 1, e0 rotates within the (0, 2) pair by angle 1; e1 within (1, 3) by 0.1.
    const x = Float64Array.from([0, 0, 0, 0, /* t=1 */ 1, 0, 0, 0]);
    applyRope(x, 2, 1, 4, inv);
    assertClose(x, [0, 0, 0, 0, Math.cos(1), 0, Math.sin(1), 0], 1e-15);
    const y = Float64Array.from([0, 0, 0, 0, 0, 1, 0, 0]);
    applyRope(y, 2, 1, 4, inv);
    assertClose(y, [0, 0, 0, 0, 0, Math.cos(0.1), 0, Math.sin(0.1)], 1e-15);
    // Position 0 is the identity.
    const z = Float64Array.from([0.3, -0.2, 0.7, 0.1]);
    applyRope(z, 1, 1, 4, inv);
    assertClose(z, [0.3, -0.2, 0.7, 0.1], 0);
  });

  it('RoPE, head_dim 2: rotated q.k = cos(s-t) q.k + sin(s-t)(q1 k0 - q0 k1), a function of s-t only', () => {
    const inv = ropeInvFreq({ rope_theta: 12345 }, 2); // D=2: inv_freq = [theta^0] = [1] for any theta
    assertClose(inv, [1], 0);
    const q = [0.8, -0.3];
    const k = [0.25, 1.1];
    const rot = (v: number[], pos: number) => {
      const a = Float64Array.from(v);
      applyRope(a, 1, 1, 2, inv, [pos]);
      return a;
    };
    for (const [tq, sk] of [[0, 0], [3, 1], [5, 3], [2, 7], [10, 12]] as const) {
      const qr = rot(q, tq);
      const kr = rot(k, sk);
      const dot = qr[0]! * kr[0]! + qr[1]! * kr[1]!;
      const phi = sk - tq;
      const closed = Math.cos(phi) * (q[0]! * k[0]! + q[1]! * k[1]!) + Math.sin(phi) * (q[1]! * k[0]! - q[0]! * k[1]!);
      assert.ok(Math.abs(dot - closed) < 1e-14, `t=${tq} s=${sk}: ${dot} vs ${closed}`);
    }
  });

  it('RoPE relative property for head_dim 8 with a non-default theta', () => {
    const inv = ropeInvFreq({ rope_theta: 500 }, 8);
    const r = rng(9);
    const q = Array.from({ length: 8 }, () => r() - 0.5);
    const k = Array.from({ length: 8 }, () => r() - 0.5);
    const dotAt = (tq: number, sk: number) => {
      const a = Float64Array.from(q);
      const b = Float64Array.from(k);
      applyRope(a, 1, 1, 8, inv, [tq]);
      applyRope(b, 1, 1, 8, inv, [sk]);
      return a.reduce((s, v, i) => s + v * b[i]!, 0);
    };
    assert.ok(Math.abs(dotAt(7, 3) - dotAt(4, 0)) < 1e-13);
    assert.ok(Math.abs(dotAt(2, 9) - dotAt(13, 20)) < 1e-13);
    assert.ok(Math.abs(dotAt(7, 3) - dotAt(3, 7)) > 1e-4); // not symmetric in general
  });

  it('llama3 rope scaling follows _compute_llama3_parameters', () => {
    // D=6, theta=100: inv = [1, 100^(-1/3), 100^(-2/3)], wavelengths 2pi/inv = [6.28, 29.2, 135.4]
    // original 256, low 1, high 4: low_wavelen = 256, high_wavelen = 64 -> [high, high, medium]
    const cfg = {
      rope_theta: 100,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 256 },
    };
    const f2 = Math.pow(100, -2 / 3);
    const smooth = (256 / ((2 * Math.PI) / f2) - 1) / (4 - 1);
    const expected = [1, Math.pow(100, -1 / 3), ((1 - smooth) * f2) / 8 + smooth * f2];
    assertClose(ropeInvFreq(cfg, 6), expected, 1e-15);
    // original 28: high_wavelen = 7, low_wavelen = 28 -> [high, low, low]; low ones are divided by factor
    const cfg2 = { ...cfg, rope_scaling: { ...cfg.rope_scaling, original_max_position_embeddings: 28 } };
    assertClose(ropeInvFreq(cfg2, 6), [1, Math.pow(100, -1 / 3) / 8, f2 / 8], 1e-15);
    assertClose(ropeInvFreq({ rope_theta: 100, rope_scaling: { type: 'linear', factor: 4 } }, 4), [0.25, 0.025], 1e-15);
    assert.throws(() => ropeInvFreq({ rope_scaling: { rope_type: 'yarn', factor: 4 } }, 4), /unsupported/);
  });

  it('zero layers, 1 token, d=2: logits = RMSNorm(embed[id]) * w @ lm_head^T', () => {
    const cfg = { vocab_size: 2, hidden_size: 2, intermediate_size: 3, num_hidden_layers: 1, num_attention_heads: 1 };
    const w: W = new Map([
      ['model.embed_tokens.weight', t([2, 2], [3, 4, 1, 1])],
      ['model.layers.0.input_layernorm.weight', ones([2])],
      ['model.layers.0.self_attn.q_proj.weight', zeros([2, 2])],
      ['model.layers.0.self_attn.k_proj.weight', zeros([2, 2])],
      ['model.layers.0.self_attn.v_proj.weight', zeros([2, 2])],
      ['model.layers.0.self_attn.o_proj.weight', zeros([2, 2])],
      ['model.layers.0.post_attention_layernorm.weight', ones([2])],
      ['model.layers.0.mlp.gate_proj.weight', zeros([3, 2])],
      ['model.layers.0.mlp.up_proj.weight', zeros([3, 2])],
      ['model.layers.0.mlp.down_proj.weight', zeros([2, 3])],
      ['model.norm.weight', t([2], [2, 0.5])],
      ['lm_head.weight', t([2, 2], [1, 0, 1, 1])],
    ]);
    // mean(x^2) = (9 + 16)/2 = 12.5; eps default 1e-6; normed = [3, 4]/sqrt(12.5 + 1e-6) * [2, 0.5] = [6, 2]/r
    const r = Math.sqrt(12.5 + 1e-6);
    assertClose(llamaCausalLM64(cfg, w, [[0]]), [6 / r, 8 / r], 1e-14);
    // Untied without lm_head is an error; tied falls back to embed_tokens.
    w.delete('lm_head.weight');
    assert.throws(() => llamaCausalLM64(cfg, w, [[0]]), /lm_head/);
    assertClose(llamaCausalLM64({ ...cfg, tie_word_embeddings: true }, w, [[0]]), [(3 * 6 + 4 * 2) / r, (6 + 2) / r], 1e-14);
    // mlp_bias: down_proj.bias is added to the residual stream: h = [3,4] + [1,-2] = [4, 2]
    w.set('lm_head.weight', t([2, 2], [1, 0, 1, 1]));
    w.set('model.layers.0.mlp.gate_proj.bias', zeros([3]));
    w.set('model.layers.0.mlp.up_proj.bias', zeros([3]));
    w.set('model.layers.0.mlp.down_proj.bias', t([2], [1, -2]));
    const r2 = Math.sqrt((16 + 4) / 2 + 1e-6);
    assertClose(llamaCausalLM64({ ...cfg, mlp_bias: true }, w, [[0]]), [8 / r2, 9 / r2], 1e-14);
    assertClose(llamaCausalLM64(cfg, w, [[0]]), [6 / r, 8 / r], 1e-14, 'biases ignored when mlp_bias is false');
  });

  it('hand-worked 1-layer, d=2, T=3 example with RoPE and causal attention', () => {
    const eps = 0.01;
    const cfg = {
      vocab_size: 3, hidden_size: 2, intermediate_size: 2, num_hidden_layers: 1,
      num_attention_heads: 1, num_key_value_heads: 1, rms_norm_eps: eps, rope_theta: 10000,
    };
    const w: W = new Map([
      ['model.embed_tokens.weight', t([3, 2], [1, 0, 0, 2, 1, 1])],
      ['model.layers.0.input_layernorm.weight', ones([2])],
      ['model.layers.0.self_attn.q_proj.weight', t([2, 2], [1, 0, 0, 1])], // q = r
      ['model.layers.0.self_attn.k_proj.weight', t([2, 2], [0, 1, 1, 0])], // k = [r1, r0]
      ['model.layers.0.self_attn.v_proj.weight', t([2, 2], [2, 0, 0, 1])], // v = [2 r0, r1]
      ['model.layers.0.self_attn.o_proj.weight', t([2, 2], [1, 0, 0, 1])],
      ['model.layers.0.post_attention_layernorm.weight', ones([2])],
      ['model.layers.0.mlp.gate_proj.weight', t([2, 2], [1, 0, 0, 1])], // gate = m
      ['model.layers.0.mlp.up_proj.weight', t([2, 2], [1, 1, 0, 1])], // up = [m0 + m1, m1]
      ['model.layers.0.mlp.down_proj.weight', t([2, 2], [1, 0, 0, 1])],
      ['model.norm.weight', t([2], [1, 0.5])],
      ['lm_head.weight', t([3, 2], [1, 0, 0, 1, 1, -1])],
    ]);
    const rms = (v: number[], g: number[]) => {
      const r = Math.sqrt((v[0]! ** 2 + v[1]! ** 2) / 2 + eps);
      return [(v[0]! / r) * g[0]!, (v[1]! / r) * g[1]!];
    };
    // head_dim 2 -> inv_freq = [1]; RoPE at position p rotates (a, b) by angle p:
    const rot = (v: number[], p: number) => [v[0]! * Math.cos(p) - v[1]! * Math.sin(p), v[1]! * Math.cos(p) + v[0]! * Math.sin(p)];
    const silu = (z: number) => z / (1 + Math.exp(-z));
    // Step 1, ids [0, 2, 1]: x = [[1,0], [1,1], [0,2]]
    const x = [[1, 0], [1, 1], [0, 2]];
    // Step 2, input RMSNorm: r0 = [1.40028, 0], r1 = [0.99504, 0.99504], r2 = [0, 1.41069]
    const r = x.map((v) => rms(v, [1, 1]));
    // Step 3, projections then RoPE at positions 0, 1, 2
    const q = r.map((v, p) => rot(v, p));
    const k = r.map((v, p) => rot([v[1]!, v[0]!], p));
    const v = r.map((u) => [2 * u[0]!, u[1]!]);
    // Step 4, causal softmax(q.k / sqrt 2):
    //   t=0: p = [1];  t=1: scores [1.36137, 1.40021] -> p = [0.49029, 0.50971]
    //   t=2: scores [-0.58127, -0.29893, 0] -> p = [0.24304, 0.32233, 0.43463]
    const ctx = q.map((qt, tq) => {
      const s = k.slice(0, tq + 1).map((ks) => (qt[0]! * ks[0]! + qt[1]! * ks[1]!) / Math.SQRT2);
      const e = s.map((z) => Math.exp(z));
      const Z = e.reduce((a, b) => a + b, 0);
      return [0, 1].map((j) => e.reduce((acc, ei, si) => acc + (ei / Z) * v[si]![j]!, 0));
    });
    // Step 5, o_proj = I, residual: h = [[3.80056, 0], [3.38745, 1.50718], [1.32211, 2.93386]]
    let h = x.map((xi, i) => [xi[0]! + ctx[i]![0]!, xi[1]! + ctx[i]![1]!]);
    // Step 6, MLP on m = RMSNorm(h): [silu(m0) (m0 + m1), silu(m1) m1], residual
    //   h = [[5.40689, 0], [5.27678, 1.71832], [2.01755, 4.23439]]
    h = h.map((hi) => {
      const m = rms(hi, [1, 1]);
      return [hi[0]! + silu(m[0]!) * (m[0]! + m[1]!), hi[1]! + silu(m[1]!) * m[1]!];
    });
    // Step 7, final norm (weight [1, 0.5]) and lm_head rows [1,0], [0,1], [1,-1]
    const f = h.map((hi) => rms(hi, [1, 0.5]));
    const expected = f.flatMap((fi) => [fi[0]!, fi[1]!, fi[0]! - fi[1]!]);
    const literal = [
      1.4137300611650547, 0.0, 1.4137300611650547,
      1.344276043433275, 0.21887435605329789, 1.125401687379977,
      0.6080306365570828, 0.6380600007594467, -0.030029364202363906,
    ];
    assertClose(expected, literal, 1e-13, 'hand steps vs literal');
    assertClose(llamaCausalLM64(cfg, w, [[0, 2, 1]]), expected, 1e-13, 'llama');
  });

  it('is causal: changing a later token leaves earlier logits unchanged', () => {
    const w = llamaRandom(11);
    const V = llamaCfg.vocab_size;
    const a = llamaCausalLM64(llamaCfg, w, [[1, 4, 7, 2, 9, 12]]);
    const b = llamaCausalLM64(llamaCfg, w, [[1, 4, 7, 2, 3, 12]]);
    assert.deepEqual(positions(a, V, 0, 4), positions(b, V, 0, 4));
    assert.ok(maxAbsDiff(positions(a, V, 4, 6), positions(b, V, 4, 6)) > 1e-3);
  });

  it('GQA: query head h reads kv head floor(h / groups), same as duplicating kv heads', () => {
    // H=4, Hkv=2, D=2 (hidden 8). Equivalent MHA model: kv head order [kv0, kv0, kv1, kv1].
    const gqaW = llamaRandom(12, { ...llamaCfg, attention_bias: true });
    const gqaCfg = { ...llamaCfg, attention_bias: true };
    const D = 2;
    const dup = (name: string, perRow: number, order: number[]) => {
      const src = gqaW.get(name)!;
      const out: number[] = [];
      for (const head of order) for (let i = 0; i < D * perRow; i++) out.push(src.data[head * D * perRow + i]!);
      return t([order.length * D, ...src.shape.slice(1)], out);
    };
    const expand = (order: number[]) => {
      const m: W = new Map(gqaW);
      for (let i = 0; i < llamaCfg.num_hidden_layers; i++) {
        for (const p of ['k_proj', 'v_proj']) {
          m.set(`model.layers.${i}.self_attn.${p}.weight`, dup(`model.layers.${i}.self_attn.${p}.weight`, llamaCfg.hidden_size, order));
          m.set(`model.layers.${i}.self_attn.${p}.bias`, dup(`model.layers.${i}.self_attn.${p}.bias`, 1, order));
        }
      }
      return m;
    };
    const ids = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]];
    const gqa = llamaCausalLM64(gqaCfg, gqaW, ids);
    const mha = llamaCausalLM64({ ...gqaCfg, num_key_value_heads: 4 }, expand([0, 0, 1, 1]), ids);
    assertClose(gqa, mha, 1e-12);
    // The interleaved mapping (h % Hkv) is a different model.
    const wrong = llamaCausalLM64({ ...gqaCfg, num_key_value_heads: 4 }, expand([0, 1, 0, 1]), ids);
    assert.ok(maxAbsDiff(gqa, wrong) > 1e-4);
    // MQA (Hkv = 1) likewise equals four copies of the single kv head.
    const mqaW = llamaRandom(13, { ...gqaCfg, num_key_value_heads: 1 });
    const mqa = llamaCausalLM64({ ...gqaCfg, num_key_value_heads: 1 }, mqaW, ids);
    gqaW.clear();
    for (const [kk, vv] of mqaW) gqaW.set(kk, vv);
    assertClose(mqa, llamaCausalLM64({ ...gqaCfg, num_key_value_heads: 4 }, expand([0, 0, 0, 0]), ids), 1e-12);
  });

  it('explicit head_dim different from hidden/heads is honoured', () => {
    const cfg = { ...llamaCfg, head_dim: 6 }; // q_proj: (4*6, 8)
    const w = llamaRandom(14, cfg);
    const out = llamaCausalLM64(cfg, w, [[1, 2, 3]]);
    assert.equal(out.length, 3 * llamaCfg.vocab_size);
    assert.throws(() => llamaCausalLM64(llamaCfg, w, [[1, 2, 3]]), /shape/);
  });

  it('sequence classification pools at lengths[b]-1 and matches lm_head rows', () => {
    const w = llamaRandom(15);
    const d = llamaCfg.hidden_size;
    const V = llamaCfg.vocab_size;
    w.set('score.weight', { shape: [3, d], data: w.get('lm_head.weight')!.data.slice(0, 3 * d) });
    const ids = [[5, 6, 7, 8, 0], [4, 3, 2, 0, 0]];
    const lengths = [5, 3];
    const cls = llamaSeqCls64({ ...llamaCfg, id2label: { 0: 'a', 1: 'b', 2: 'c' } }, w, ids, lengths);
    const lm = llamaCausalLM64(llamaCfg, w, ids);
    const T = 5;
    const expected = [0, 1].flatMap((b) => [0, 1, 2].map((c) => lm[(b * T + lengths[b]! - 1) * V + c]!));
    assertClose(cls, expected, 1e-12);
  });
});

// ---------------------------------------------------------------------------------------------
// BERT
// ---------------------------------------------------------------------------------------------

describe('reference64: BERT', () => {
  it('hand-worked 1-layer, d=2, T=3 example with a padded key (eps=0.5)', () => {
    const eps = 0.5;
    const cfg = {
      vocab_size: 4, hidden_size: 2, num_hidden_layers: 1, num_attention_heads: 1, intermediate_size: 2,
      max_position_embeddings: 4, type_vocab_size: 2, layer_norm_eps: eps, hidden_act: 'gelu', num_labels: 3,
    };
    const w: W = new Map([
      ['bert.embeddings.word_embeddings.weight', t([4, 2], [0, 0, 1, 0, 0, 2, 2, 1])],
      ['bert.embeddings.position_embeddings.weight', t([4, 2], [0.1, 0, 0, 0.1, 0.2, 0, 0, 0])],
      ['bert.embeddings.token_type_embeddings.weight', t([2, 2], [0, 0, 0.5, -0.5])],
      ['bert.embeddings.LayerNorm.weight', ones([2])],
      ['bert.embeddings.LayerNorm.bias', zeros([2])],
      ['bert.encoder.layer.0.attention.self.query.weight', t([2, 2], [1, 0, 0, 1])],
      ['bert.encoder.layer.0.attention.self.query.bias', zeros([2])],
      ['bert.encoder.layer.0.attention.self.key.weight', t([2, 2], [1, 0, 0, 1])],
      ['bert.encoder.layer.0.attention.self.key.bias', zeros([2])],
      ['bert.encoder.layer.0.attention.self.value.weight', t([2, 2], [1, 0, 0, 1])],
      ['bert.encoder.layer.0.attention.self.value.bias', t([2], [0.1, 0])],
      ['bert.encoder.layer.0.attention.output.dense.weight', t([2, 2], [1, 0, 0, 1])],
      ['bert.encoder.layer.0.attention.output.dense.bias', zeros([2])],
      ['bert.encoder.layer.0.attention.output.LayerNorm.weight', ones([2])],
      ['bert.encoder.layer.0.attention.output.LayerNorm.bias', t([2], [0, 0.2])],
      ['bert.encoder.layer.0.intermediate.dense.weight', zeros([2, 2])],
      ['bert.encoder.layer.0.intermediate.dense.bias', t([2], [0.5, -1])],
      ['bert.encoder.layer.0.output.dense.weight', t([2, 2], [1, 0, 0, 1])],
      ['bert.encoder.layer.0.output.dense.bias', zeros([2])],
      ['bert.encoder.layer.0.output.LayerNorm.weight', ones([2])],
      ['bert.encoder.layer.0.output.LayerNorm.bias', zeros([2])],
      ['bert.pooler.dense.weight', t([2, 2], [1, 0, 2, 1])], // nn.Linear [out, in]: y = [c0, 2 c0 + c1] + b
      ['bert.pooler.dense.bias', t([2], [0, -0.5])],
      ['classifier.weight', t([3, 2], [1, 0, 0, 1, 1, -1])],
      ['classifier.bias', t([3], [0.1, 0, 0])],
    ]);
    const ids = [[1, 3, 2]];
    const types = [[0, 1, 1]];
    const mask = [[1, 1, 0]];
    // Step 1, embeddings word + position + type: e = [[1.1, 0], [2.5, 0.6], [0.7, 1.5]]
    const e = [[1.1, 0], [2.5, 0.6], [0.7, 1.5]];
    // Step 2, embedding LayerNorm: h0 = [[0.61396, -0.61396], [0.80218, -0.80218], [-0.49237, 0.49237]]
    const h0 = e.map(([a, b]) => ln2(a!, b!, eps));
    // Step 3, q = k = h0, v = h0 + [0.1, 0]; key 2 is padding and gets zero weight
    //   t=0: p = [0.45923, 0.54077]; t=1: p = [0.44682, 0.55318]; t=2: p = [0.53272, 0.46728]
    const ctx = h0.map((qt) => {
      const s = [0, 1].map((j) => (qt[0]! * h0[j]![0]! + qt[1]! * h0[j]![1]!) / Math.SQRT2);
      const ex = s.map((z) => Math.exp(z));
      const Z = ex[0]! + ex[1]!;
      return [0, 1].map((c) => (ex[0]! / Z) * (h0[0]![c]! + (c === 0 ? 0.1 : 0)) + (ex[1]! / Z) * (h0[1]![c]! + (c === 0 ? 0.1 : 0)));
    });
    // Step 4, output dense = I, h1 = LN(h0 + ctx) + [0, 0.2]: h1[0] = [0.88993, -0.68993]
    const h1 = h0.map((hi, i) => {
      const [a, b] = ln2(hi[0]! + ctx[i]![0]!, hi[1]! + ctx[i]![1]!, eps);
      return [a, b + 0.2];
    });
    // Step 5, FFN with zero intermediate weight: f = [gelu(0.5), gelu(-1)] = [0.34573, -0.15866]
    //   (exact erf GELU: 0.5 * 0.5 * (1 + erf(0.5/sqrt2)), -Phi(-1))
    const f = [0.5 * 0.5 * (1 + 0.3829249225480262), -0.15865525393145707];
    // h2 = LN(h1 + f): h2[0] = [0.82749, -0.82749]
    const h2 = h1.map((hi) => ln2(hi[0]! + f[0]!, hi[1]! + f[1]!, eps));
    // Step 6, pooler on [CLS]: tanh([c0, 2 c0 + c1 - 0.5]) = [0.67913, 0.31627]
    const c = h2[0]!;
    const pooled = [Math.tanh(c[0]!), Math.tanh(2 * c[0]! + c[1]! - 0.5)];
    // Step 7, classifier
    const expected = [pooled[0]! + 0.1, pooled[1]!, pooled[0]! - pooled[1]!];
    const literal = [0.7791280135923572, 0.31626707310668506, 0.36286094048567213];
    assertClose(expected, literal, 1e-13, 'hand steps vs literal');
    assertClose(bertSeqCls64(cfg, w, ids, mask, types), expected, 1e-13, 'bert');
  });

  it('masked-out tokens (ids and token types) do not affect the output', () => {
    const w = bertRandom(21);
    const mask = [[1, 1, 1, 0, 0]];
    const a = bertSeqCls64(bertCfg, w, [[2, 5, 7, 0, 0]], mask, [[0, 0, 1, 0, 0]]);
    const b = bertSeqCls64(bertCfg, w, [[2, 5, 7, 9, 16]], mask, [[0, 0, 1, 1, 1]]);
    assertClose(a, b, 1e-12);
    // ...but an unmasked change does.
    const c = bertSeqCls64(bertCfg, w, [[2, 5, 8, 0, 0]], mask, [[0, 0, 1, 0, 0]]);
    assert.ok(maxAbsDiff(a, c) > 1e-4);
    // and the padded positions' embeddings/positions still exist: same as the unpadded sequence
    const short = bertSeqCls64(bertCfg, w, [[2, 5, 7]], [[1, 1, 1]], [[0, 0, 1]]);
    assertClose(a, short, 1e-12);
  });

  it('token types default to zeros and do matter; batch rows are independent', () => {
    const w = bertRandom(22);
    const ids = [[1, 2, 3, 4], [5, 6, 0, 0]];
    const mask = [[1, 1, 1, 1], [1, 1, 0, 0]];
    const def = bertSeqCls64(bertCfg, w, ids, mask);
    assertClose(def, bertSeqCls64(bertCfg, w, ids, mask, [[0, 0, 0, 0], [0, 0, 0, 0]]), 0);
    assert.ok(maxAbsDiff(def, bertSeqCls64(bertCfg, w, ids, mask, [[0, 0, 1, 1], [0, 0, 0, 0]])) > 1e-4);
    assert.equal(def.length, 2 * 3);
    assertClose(def.slice(3), bertSeqCls64(bertCfg, w, [ids[1]!], [mask[1]!]), 1e-12);
  });

  it('an all-zero attention mask behaves like HF finfo.min (uniform softmax = no mask)', () => {
    const w = bertRandom(23);
    const ids = [[3, 1, 4]];
    assertClose(bertSeqCls64(bertCfg, w, ids, [[0, 0, 0]]), bertSeqCls64(bertCfg, w, ids, [[1, 1, 1]]), 1e-12);
  });

  it('hidden_act gelu (erf) and gelu_new give different logits', () => {
    const w = bertRandom(24);
    const ids = [[3, 1, 4, 1]];
    const mask = [[1, 1, 1, 1]];
    const a = bertSeqCls64(bertCfg, w, ids, mask);
    const b = bertSeqCls64({ ...bertCfg, hidden_act: 'gelu_new' }, w, ids, mask);
    assert.ok(maxAbsDiff(a, b) > 1e-6 && maxAbsDiff(a, b) < 1e-1);
  });
});
