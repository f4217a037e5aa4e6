import type { FamilyKeys } from './types.ts';

/** GPT2LMHeadModel / GPT2ForSequenceClassification. Conv1D weights are already (in, out). */
export const GPT2_KEYS: FamilyKeys = {
  prefix: 'transformer.',
  rules: [
    { hf: 'wte.weight', internal: 'embed.tokens', layout: 'same' },
    { hf: 'wpe.weight', internal: 'embed.positions', layout: 'same' },
    { hf: 'h.{i}.ln_1.weight', internal: 'layers.{i}.attn_norm.weight', layout: 'same' },
    { hf: 'h.{i}.ln_1.bias', internal: 'layers.{i}.attn_norm.bias', layout: 'same' },
    { hf: 'h.{i}.attn.c_attn.weight', internal: ['layers.{i}.attn.wq', 'layers.{i}.attn.wk', 'layers.{i}.attn.wv'], layout: 'split-cols' },
    { hf: 'h.{i}.attn.c_attn.bias', internal: ['layers.{i}.attn.bq', 'layers.{i}.attn.bk', 'layers.{i}.attn.bv'], layout: 'split-cols' },
    { hf: 'h.{i}.attn.c_proj.weight', internal: 'layers.{i}.attn.wo', layout: 'same' },
    { hf: 'h.{i}.attn.c_proj.bias', internal: 'layers.{i}.attn.bo', layout: 'same' },
    { hf: 'h.{i}.ln_2.weight', internal: 'layers.{i}.mlp_norm.weight', layout: 'same' },
    { hf: 'h.{i}.ln_2.bias', internal: 'layers.{i}.mlp_norm.bias', layout: 'same' },
    { hf: 'h.{i}.mlp.c_fc.weight', internal: 'layers.{i}.mlp.w_in', layout: 'same' },
    { hf: 'h.{i}.mlp.c_fc.bias', internal: 'layers.{i}.mlp.b_in', layout: 'same' },
    { hf: 'h.{i}.mlp.c_proj.weight', internal: 'layers.{i}.mlp.w_out', layout: 'same' },
    { hf: 'h.{i}.mlp.c_proj.bias', internal: 'layers.{i}.mlp.b_out', layout: 'same' },
    { hf: 'ln_f.weight', internal: 'final_norm.weight', layout: 'same' },
    { hf: 'ln_f.bias', internal: 'final_norm.bias', layout: 'same' },
    { hf: 'lm_head.weight', internal: 'lm_head', layout: 'transpose', top: true },
    { hf: 'score.weight', internal: 'score.weight', layout: 'transpose', top: true },
  ],
  // Old checkpoints store the causal mask as buffers attn.bias / attn.masked_bias.
  ignore: [/^h\.\d+\.attn\.(masked_)?bias$/],
};
