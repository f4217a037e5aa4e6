// Independent float64 reference forward passes of the Hugging Face `transformers` models used by
// ringtune (GPT-2, Llama family, BERT). Plain TypeScript loops, no tfjs, no imports from src/.
// Tests compare the tfjs models' logits against these.
//
// Inputs everywhere:
//   config  - the HF config.json object (snake_case keys, HF defaults for absent keys)
//   weights - Map from canonical HF state-dict names (with `transformer.` / `model.` / `bert.`
//             prefixes, heads unprefixed: lm_head.weight, score.weight, classifier.*) to
//             { shape, data: Float32Array | Float64Array }
//   ids     - B rows of T token ids (right-padded to equal length)
// Outputs are row-major Float64Array: (B, T, V) for causal LM logits, (B, num_labels) for
// sequence classification.

export { gpt2CausalLM64, gpt2SeqCls64 } from './gpt2-64.ts';
export { llamaCausalLM64, llamaSeqCls64, ropeInvFreq, applyRope } from './llama-64.ts';
export { bertSeqCls64 } from './bert-64.ts';
export { erf, geluErf, geluTanh, silu, activation, type HfConfig64, type Tensor64Source, type Weights64 } from './linalg64.ts';
