/**
 * BERT encoder (Devlin et al. 2018; HF modeling_bert.py): word + position + token-type embeddings,
 * LayerNorm, post-LN blocks with bidirectional attention (padding keys masked), exact-erf GELU.
 *   h = LN(word[ids] + pos[t] + type[tt])
 *   h = LN(h + attn(h));  h = LN(h + ffn(h))   x nLayers
 * The pooler (tanh dense on [CLS]) and classifier live in heads.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, Task } from './config.ts';
import { activation } from './layers/activations.ts';
import { attention, keyMaskFrom, type LayerCache } from './layers/attention.ts';
import { gatherRows } from './layers/embedding.ts';
import { layerNorm } from './layers/layer-norm.ts';
import { mlp } from './layers/mlp.ts';
import { param, type ParamSpec, type Params } from './params.ts';
import type { BodyInput, BodyOutput } from './types.ts';

export function bertParamSpecs(cfg: ModelConfig, _task: Task): ParamSpec[] {
  const { dModel: d, dFF, vocabSize: V, maxPositions: P } = cfg;
  const norm = (name: string): ParamSpec[] => [
    { name: `${name}.weight`, shape: [d], init: 'ones' },
    { name: `${name}.bias`, shape: [d], init: 'zeros' },
  ];
  const specs: ParamSpec[] = [
    { name: 'embed.tokens', shape: [V, d], init: 'normal' },
    { name: 'embed.positions', shape: [P, d], init: 'normal' },
    { name: 'embed.token_types', shape: [cfg.typeVocabSize, d], init: 'normal' },
    ...norm('embed.norm'),
  ];
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    specs.push(
      ...(['q', 'k', 'v', 'o'] as const).flatMap((x): ParamSpec[] => [
        { name: `${l}.attn.w${x}`, shape: [d, d], init: 'normal' },
        { name: `${l}.attn.b${x}`, shape: [d], init: 'zeros' },
      ]),
      ...norm(`${l}.attn_out_norm`),
      { name: `${l}.mlp.w_in`, shape: [d, dFF], init: 'normal' },
      { name: `${l}.mlp.b_in`, shape: [dFF], init: 'zeros' },
      { name: `${l}.mlp.w_out`, shape: [dFF, d], init: 'normal' },
      { name: `${l}.mlp.b_out`, shape: [d], init: 'zeros' },
      ...norm(`${l}.mlp_out_norm`),
    );
  }
  specs.push(
    { name: 'pooler.weight', shape: [d, d], init: 'normal', head: true },
    { name: 'pooler.bias', shape: [d], init: 'zeros', head: true },
    { name: 'score.weight', shape: [d, cfg.numLabels], init: 'normal', head: true },
    { name: 'score.bias', shape: [cfg.numLabels], init: 'zeros', head: true },
  );
  return specs;
}

export function bertBody(cfg: ModelConfig, p: Params, x: BodyInput): BodyOutput {
  const { B, T } = x;
  const d = cfg.dModel;
  const tok = tf.reshape(gatherRows(param(p, 'embed.tokens'), tf.reshape(x.ids, [B * T])), [B, T, d]);
  const pos = tf.slice(param<tf.Rank.R2>(p, 'embed.positions'), [0, 0], [T, d]);
  const typeIds = x.tokenTypeIds ?? tf.zeros([B, T], 'int32');
  const types = tf.reshape(gatherRows(param(p, 'embed.token_types'), tf.reshape(typeIds, [B * T])), [B, T, d]);
  const e = tf.reshape(tf.add(tf.add(tok, pos), types), [B * T, d]) as tf.Tensor2D;
  let h = layerNorm(e, param(p, 'embed.norm.weight'), param(p, 'embed.norm.bias'), cfg.normEps);
  const keyMask = x.attentionMask ? keyMaskFrom(x.attentionMask) : undefined;
  const act = activation(cfg.activation);
  for (let i = 0; i < cfg.nLayers; i++) {
    const l = `layers.${i}`;
    const a = attention(
      h,
      {
        wq: param(p, `${l}.attn.wq`), wk: param(p, `${l}.attn.wk`), wv: param(p, `${l}.attn.wv`), wo: param(p, `${l}.attn.wo`),
        bq: param(p, `${l}.attn.bq`), bk: param(p, `${l}.attn.bk`), bv: param(p, `${l}.attn.bv`), bo: param(p, `${l}.attn.bo`),
      },
      { B, T, nHeads: cfg.nHeads, nKvHeads: cfg.nHeads, headDim: cfg.headDim, causal: false, offset: 0, keyMask },
    );
    h = layerNorm(tf.add(h, a.out), param(p, `${l}.attn_out_norm.weight`), param(p, `${l}.attn_out_norm.bias`), cfg.normEps);
    const f = mlp(h, param(p, `${l}.mlp.w_in`), param(p, `${l}.mlp.b_in`), param(p, `${l}.mlp.w_out`), param(p, `${l}.mlp.b_out`), act);
    h = layerNorm(tf.add(h, f), param(p, `${l}.mlp_out_norm.weight`), param(p, `${l}.mlp_out_norm.bias`), cfg.normEps);
  }
  return { hidden: h, cache: [] as LayerCache[] };
}
