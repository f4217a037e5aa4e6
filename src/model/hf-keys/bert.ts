import type { FamilyKeys } from './types.ts';

const dense = (hf: string, w: string, b: string) =>
  [
    { hf: `${hf}.weight`, internal: w, layout: 'transpose' },
    { hf: `${hf}.bias`, internal: b, layout: 'same' },
  ] as const;
const norm = (hf: string, internal: string) =>
  [
    { hf: `${hf}.weight`, internal: `${internal}.weight`, layout: 'same' },
    { hf: `${hf}.bias`, internal: `${internal}.bias`, layout: 'same' },
  ] as const;

/** BertForSequenceClassification. nn.Linear is (out, in). */
export const BERT_KEYS: FamilyKeys = {
  prefix: 'bert.',
  rules: [
    { hf: 'embeddings.word_embeddings.weight', internal: 'embed.tokens', layout: 'same' },
    { hf: 'embeddings.position_embeddings.weight', internal: 'embed.positions', layout: 'same' },
    { hf: 'embeddings.token_type_embeddings.weight', internal: 'embed.token_types', layout: 'same' },
    ...norm('embeddings.LayerNorm', 'embed.norm'),
    ...dense('encoder.layer.{i}.attention.self.query', 'layers.{i}.attn.wq', 'layers.{i}.attn.bq'),
    ...dense('encoder.layer.{i}.attention.self.key', 'layers.{i}.attn.wk', 'layers.{i}.attn.bk'),
    ...dense('encoder.layer.{i}.attention.self.value', 'layers.{i}.attn.wv', 'layers.{i}.attn.bv'),
    ...dense('encoder.layer.{i}.attention.output.dense', 'layers.{i}.attn.wo', 'layers.{i}.attn.bo'),
    ...norm('encoder.layer.{i}.attention.output.LayerNorm', 'layers.{i}.attn_out_norm'),
    ...dense('encoder.layer.{i}.intermediate.dense', 'layers.{i}.mlp.w_in', 'layers.{i}.mlp.b_in'),
    ...dense('encoder.layer.{i}.output.dense', 'layers.{i}.mlp.w_out', 'layers.{i}.mlp.b_out'),
    ...norm('encoder.layer.{i}.output.LayerNorm', 'layers.{i}.mlp_out_norm'),
    ...dense('pooler.dense', 'pooler.weight', 'pooler.bias'),
    { hf: 'classifier.weight', internal: 'score.weight', layout: 'transpose', top: true },
    { hf: 'classifier.bias', internal: 'score.bias', layout: 'same', top: true },
  ],
  // position_ids is a buffer; cls.* are the pre-training (MLM / NSP) heads of base checkpoints.
  ignore: [/^embeddings\.position_ids$/, /^cls\./],
};
