import type { FamilyKeys } from './types.ts';

const proj = (hf: string, internal: string) =>
  [
    { hf: `${hf}.weight`, internal: `${internal.replace('#', 'w')}`, layout: 'transpose' },
    { hf: `${hf}.bias`, internal: `${internal.replace('#', 'b')}`, layout: 'same' },
  ] as const;

/** LlamaForCausalLM / LlamaForSequenceClassification (also Mistral, Qwen2, SmolLM). nn.Linear is (out, in). */
export const LLAMA_KEYS: FamilyKeys = {
  prefix: 'model.',
  rules: [
    { hf: 'embed_tokens.weight', internal: 'embed.tokens', layout: 'same' },
    { hf: 'layers.{i}.input_layernorm.weight', internal: 'layers.{i}.attn_norm.weight', layout: 'same' },
    ...proj('layers.{i}.self_attn.q_proj', 'layers.{i}.attn.#q'),
    ...proj('layers.{i}.self_attn.k_proj', 'layers.{i}.attn.#k'),
    ...proj('layers.{i}.self_attn.v_proj', 'layers.{i}.attn.#v'),
    ...proj('layers.{i}.self_attn.o_proj', 'layers.{i}.attn.#o'),
    { hf: 'layers.{i}.post_attention_layernorm.weight', internal: 'layers.{i}.mlp_norm.weight', layout: 'same' },
    ...proj('layers.{i}.mlp.gate_proj', 'layers.{i}.mlp.#_gate'),
    ...proj('layers.{i}.mlp.up_proj', 'layers.{i}.mlp.#_up'),
    ...proj('layers.{i}.mlp.down_proj', 'layers.{i}.mlp.#_down'),
    { hf: 'norm.weight', internal: 'final_norm.weight', layout: 'same' },
    { hf: 'lm_head.weight', internal: 'lm_head', layout: 'transpose', top: true },
    { hf: 'score.weight', internal: 'score.weight', layout: 'transpose', top: true },
  ],
  ignore: [/^layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/],
};
