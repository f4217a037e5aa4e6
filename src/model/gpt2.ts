/**
 * GPT-2 (Radford et al. 2019; HF modeling_gpt2.py): learned positions, pre-LN blocks, gelu_new MLP.
 *   h = wte[ids] + wpe[pos]
 *   h = h + attn(ln_1(h));  h = h + mlp(ln_2(h))     x nLayers
 *   hidden = ln_f(h)
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, Task } from './config.ts';
import { attention, type LayerCache } from './layers/attention.ts';
import { activation } from './layers/activations.ts';
import { gatherRows } from './layers/embedding.ts';
import { layerNorm } from './layers/layer-norm.ts';
import { mlp } from './layers/mlp.ts';
import { optionalParam, param, type ParamSpec, type Params } from './params.ts';
import type { BodyInput, BodyOutput } from './types.ts';

export function gpt2ParamSpecs(cfg: ModelConfig, task: Task): ParamSpec[] {
  const { dModel: d, dFF, vocabSize: V, maxPositions: P } = cfg;
  // GPT-2 scales residual projections by 1/sqrt(2 * nLayers) at init (HF _init_weights).
  const residualStd = 0.02 / Math.sqrt(2 * cfg.nLayers);
  const specs: ParamSpec[] = [
    { name: 'embed.tokens', shape: [V, d], init: 'normal' },
    { name: 'embed.positions', shape: [P, d], init: 'normal', std: 0.01 },
  ];
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    specs.push(
      { name: `${l}.attn_norm.weight`, shape: [d], init: 'ones' },
      { name: `${l}.attn_norm.bias`, shape: [d], init: 'zeros' },
      ...(['q', 'k', 'v'] as const).flatMap((x): ParamSpec[] => [
        { name: `${l}.attn.w${x}`, shape: [d, d], init: 'normal' },
        { name: `${l}.attn.b${x}`, shape: [d], init: 'zeros' },
      ]),
      { name: `${l}.attn.wo`, shape: [d, d], init: 'normal', std: residualStd },
      { name: `${l}.attn.bo`, shape: [d], init: 'zeros' },
      { name: `${l}.mlp_norm.weight`, shape: [d], init: 'ones' },
      { name: `${l}.mlp_norm.bias`, shape: [d], init: 'zeros' },
      { name: `${l}.mlp.w_in`, shape: [d, dFF], init: 'normal' },
      { name: `${l}.mlp.b_in`, shape: [dFF], init: 'zeros' },
      { name: `${l}.mlp.w_out`, shape: [dFF, d], init: 'normal', std: residualStd },
      { name: `${l}.mlp.b_out`, shape: [d], init: 'zeros' },
    );
  }
  specs.push({ name: 'final_norm.weight', shape: [d], init: 'ones' }, { name: 'final_norm.bias', shape: [d], init: 'zeros' });
  if (task === 'causal-lm' && !cfg.tieEmbeddings) specs.push({ name: 'lm_head', shape: [d, V], init: 'normal', head: true });
  if (task === 'classification') specs.push({ name: 'score.weight', shape: [d, cfg.numLabels], init: 'normal', head: true });
  return specs;
}

export function gpt2Body(cfg: ModelConfig, p: Params, x: BodyInput): BodyOutput {
  const { B, T, offset } = x;
  const d = cfg.dModel;
  const tok = gatherRows(param(p, 'embed.tokens'), tf.reshape(x.ids, [B * T]));
  const pos = tf.slice(param<tf.Rank.R2>(p, 'embed.positions'), [offset, 0], [T, d]); // (T, d)
  let h = tf.reshape(tf.add(tf.reshape(tok, [B, T, d]), pos), [B * T, d]) as tf.Tensor2D;
  const act = activation(cfg.activation);
  const cache: LayerCache[] = [];
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    const a = attention(
      layerNorm(h, param(p, `${l}.attn_norm.weight`), param(p, `${l}.attn_norm.bias`), cfg.normEps),
      {
        wq: param(p, `${l}.attn.wq`), wk: param(p, `${l}.attn.wk`), wv: param(p, `${l}.attn.wv`), wo: param(p, `${l}.attn.wo`),
        bq: optionalParam(p, `${l}.attn.bq`), bk: optionalParam(p, `${l}.attn.bk`), bv: optionalParam(p, `${l}.attn.bv`),
        bo: optionalParam(p, `${l}.attn.bo`),
      },
      { B, T, nHeads: cfg.nHeads, nKvHeads: cfg.nHeads, headDim: cfg.headDim, causal: true, offset },
      x.cache?.[i],
    );
    cache.push(a.cache);
    h = tf.add(h, a.out);
    const m = layerNorm(h, param(p, `${l}.mlp_norm.weight`), param(p, `${l}.mlp_norm.bias`), cfg.normEps);
    h = tf.add(h, mlp(m, param(p, `${l}.mlp.w_in`), param(p, `${l}.mlp.b_in`), param(p, `${l}.mlp.w_out`), param(p, `${l}.mlp.b_out`), act));
  }
  return { hidden: layerNorm(h, param(p, 'final_norm.weight'), param(p, 'final_norm.bias'), cfg.normEps), cache };
}
