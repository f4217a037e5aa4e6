/**
 * One table per model family maps Hugging Face state-dict names to ringtune's internal names and
 * layouts (torchtune's _FROM_HF idea: the mapping is data, and an unknown or missing key is an error).
 */
export type Layout =
  /** same shape and order */
  | 'same'
  /** torch nn.Linear stores (out, in); ringtune stores (in, out) */
  | 'transpose'
  /** GPT-2's fused c_attn (in, 3*out) or (3*out) -> three equal column blocks q, k, v */
  | 'split-cols';

export interface KeyRule {
  /** HF name after the body prefix (or top-level when `top`); `{i}` stands for the layer index. */
  hf: string;
  internal: string | readonly string[];
  layout: Layout;
  /** Outside the body prefix: heads such as lm_head.weight, score.weight, classifier.bias. */
  top?: boolean;
}

export interface FamilyKeys {
  /** Body prefix used by *ForCausalLM / *ForSequenceClassification checkpoints; base models omit it. */
  prefix: string;
  rules: readonly KeyRule[];
  /** Buffers and heads that carry no trainable state for us (after prefix stripping for body keys). */
  ignore: readonly RegExp[];
}
