/**
 * Llama family (HF modeling_llama.py; Mistral, Qwen2 and SmolLM share the layout): no learned
 * positions, RMSNorm pre-norm blocks, rotary embeddings on q and k, grouped-query attention, SwiGLU.
 *   h = embed[ids]
 *   h = h + attn(rms_1(h));  h = h + swiglu(rms_2(h))   x nLayers
 *   hidden = rms_f(h)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, Task } from './config.ts';
import { attention, type LayerCache } from './layers/attention.ts';
import { gatherRows } from './layers/embedding.ts';
import { swiglu } from './layers/mlp.ts';
import { rmsNorm } from './layers/rms-norm.ts';
import { ropeTables, type RopeTables } from './layers/rope.ts';
import { optionalParam, param, type ParamSpec, type Params } from './params.ts';
import type { BodyInput, BodyOutput } from './types.ts';

export function llamaParamSpecs(cfg: ModelConfig, task: Task): ParamSpec[] {
  const { dModel: d, dFF, vocabSize: V, headDim: hd } = cfg;
  const qDim = cfg.nHeads * hd;
  const kvDim = cfg.nKvHeads * hd;
  const specs: ParamSpec[] = [{ name: 'embed.tokens', shape: [V, d], init: 'normal' }];
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    const attnBias = (name: string, n: number): ParamSpec[] =>
      cfg.attentionBias ? [{ name: `${l}.attn.${name}`, shape: [n], init: 'zeros', optional: true }] : [];
    const mlpBias = (name: string, n: number): ParamSpec[] =>
      cfg.mlpBias ? [{ name: `${l}.mlp.${name}`, shape: [n], init: 'zeros', optional: true }] : [];
    specs.push(
      { name: `${l}.attn_norm.weight`, shape: [d], init: 'ones' },
      { name: `${l}.attn.wq`, shape: [d, qDim], init: 'normal' }, ...attnBias('bq', qDim),
      { name: `${l}.attn.wk`, shape: [d, kvDim], init: 'normal' }, ...attnBias('bk', kvDim),
      { name: `${l}.attn.wv`, shape: [d, kvDim], init: 'normal' }, ...attnBias('bv', kvDim),
      { name: `${l}.attn.wo`, shape: [qDim, d], init: 'normal' }, ...attnBias('bo', d),
      { name: `${l}.mlp_norm.weight`, shape: [d], init: 'ones' },
      { name: `${l}.mlp.w_gate`, shape: [d, dFF], init: 'normal' }, ...mlpBias('b_gate', dFF),
      { name: `${l}.mlp.w_up`, shape: [d, dFF], init: 'normal' }, ...mlpBias('b_up', dFF),
      { name: `${l}.mlp.w_down`, shape: [dFF, d], init: 'normal' }, ...mlpBias('b_down', d),
    );
  }
  specs.push({ name: 'final_norm.weight', shape: [d], init: 'ones' });
  if (task === 'causal-lm' && !cfg.tieEmbeddings) specs.push({ name: 'lm_head', shape: [d, V], init: 'normal', head: true });
  if (task === 'classification') specs.push({ name: 'score.weight', shape: [d, cfg.numLabels], init: 'normal', head: true });
  return specs;
}

const ropeCache = new Map<string, RopeTables>();

/** Rotary tables are constants shared by every model with the same (hd, maxPositions, theta). */
function ropeFor(cfg: ModelConfig): RopeTables {
  const key = `${cfg.headDim}/${cfg.maxPositions}/${cfg.ropeTheta}`;
  let t = ropeCache.get(key);
  if (!t) {
    // Created outside any tidy scope on purpose: these constants live as long as the process.
    t = tf.tidy(() => {
      const tables = ropeTables(cfg.headDim, cfg.maxPositions, cfg.ropeTheta);
      return { cos: tf.keep(tables.cos), sin: tf.keep(tables.sin), rotate: tf.keep(tables.rotate) };
    }) as unknown as RopeTables;
    ropeCache.set(key, t);
  }
  return t;
}

export function llamaBody(cfg: ModelConfig, p: Params, x: BodyInput): BodyOutput {
  const { B, T, offset } = x;
  const rope = ropeFor(cfg);
  let h = gatherRows(param(p, 'embed.tokens'), tf.reshape(x.ids, [B * T]));
  const cache: LayerCache[] = [];
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    const a = attention(
      rmsNorm(h, param(p, `${l}.attn_norm.weight`), cfg.normEps),
      {
        wq: param(p, `${l}.attn.wq`), wk: param(p, `${l}.attn.wk`), wv: param(p, `${l}.attn.wv`), wo: param(p, `${l}.attn.wo`),
        bq: optionalParam(p, `${l}.attn.bq`), bk: optionalParam(p, `${l}.attn.bk`), bv: optionalParam(p, `${l}.attn.bv`),
        bo: optionalParam(p, `${l}.attn.bo`),
      },
      { B, T, nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads, headDim: cfg.headDim, causal: true, offset, rope },
      x.cache?.[i],
    );
    cache.push(a.cache);
    h = tf.add(h, a.out);
    const m = rmsNorm(h, param(p, `${l}.mlp_norm.weight`), cfg.normEps);
    h = tf.add(h, swiglu(m, param(p, `${l}.mlp.w_gate`), param(p, `${l}.mlp.w_up`), param(p, `${l}.mlp.w_down`), {
      gate: optionalParam(p, `${l}.mlp.b_gate`), up: optionalParam(p, `${l}.mlp.b_up`), down: optionalParam(p, `${l}.mlp.b_down`),
    }));
  }
  return { hidden: rmsNorm(h, param(p, 'final_norm.weight'), cfg.normEps), cache };
}
