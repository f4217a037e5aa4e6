/**
 * Special tokens as Hugging Face's tokenizer(text) adds them, per family's post-processor. Every
 * expected id list is worked out by hand from the vocab, merges and post-processor written in
 * tests/model/hf-tokenizers.ts (the derivation is in the comments), not from ringtune's output.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { buildFamilyTokenizer } from '../../src/model/tokenizer-build.ts';
import { bertTokenizer, gpt2Tokenizer, llama2Tokenizer, llama3Tokenizer, robertaTokenizer } from './hf-tokenizers.ts';

const load = (t: { tokenizerJson: object; tokenizerConfig: object }) => Tokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);

test('llama 2 (TemplateProcessing "<s> $A", SentencePiece BPE): <s> in front, as tokenizer(text)', () => {
  const tok = load(llama2Tokenizer());
  // "the cat" -> "▁the▁cat"; merges by rank: ▁ t, h e, ▁t he, ▁ c, a t, ▁c at -> ▁the(261) ▁cat(264)
  assert.deepEqual(tok.encode('the cat'), [1, 261, 264]);
  assert.deepEqual(tok.encode('the cat', { addSpecialTokens: false }), [261, 264]);
  assert.deepEqual(tok.encode('the'), [1, 261]);
  // "▁hat": no "▁ h" merge; "a t" -> at(263): ▁(265) h(267) at(263)
  assert.deepEqual(tok.encode('hat'), [1, 265, 267, 263]);
  // "€" is not in the vocab: byte fallback E2 82 AC -> <0xE2>=3+226, <0x82>=3+130, <0xAC>=3+172
  assert.deepEqual(tok.encode('€'), [1, 265, 229, 133, 175]);
  assert.deepEqual(tok.encode(''), [1]);
  // A text that writes "<s>" itself: tokenizer(text) gives two; encodeParts keeps one.
  assert.deepEqual(tok.encode('<s>the'), [1, 1, 261]);
  assert.deepEqual(tok.encodeParts('<s>the'), { head: [], body: [1, 261], tail: [] });
  assert.deepEqual(tok.encodeParts('the cat'), { head: [1], body: [261, 264], tail: [] });
  assert.deepEqual(tok.encodeParts('the cat', { addSpecialTokens: false }), { head: [], body: [261, 264], tail: [] });
  assert.deepEqual(tok.postProcessorSpecials, { head: [1], tail: [] });
  assert.equal(tok.bosTokenId, 1);
});

test('llama tokenizer classes: add_bos_token / add_eos_token in tokenizer_config.json rebuild the template, as LlamaTokenizerFast', () => {
  const { tokenizerJson, tokenizerConfig } = llama2Tokenizer();
  const withConfig = (extra: object) => Tokenizer.fromJson(tokenizerJson, { ...tokenizerConfig, ...extra });
  assert.deepEqual(withConfig({ add_eos_token: true }).encode('the cat'), [1, 261, 264, 2]);
  assert.deepEqual(withConfig({ add_eos_token: true }).postProcessorSpecials, { head: [1], tail: [2] });
  assert.deepEqual(withConfig({ add_bos_token: false }).encode('the cat'), [261, 264]);
  assert.deepEqual(withConfig({ add_bos_token: undefined }).encode('the cat'), [1, 261, 264]); // default true
  // Another class keeps tokenizer.json's post-processor whatever the flags say.
  assert.deepEqual(withConfig({ add_bos_token: false, tokenizer_class: 'PreTrainedTokenizerFast' }).encode('the cat'), [1, 261, 264]);
  assert.throws(() => withConfig({ add_eos_token: true, eos_token: null }), (e: unknown) => e instanceof InputError && /add_eos_token but no eos_token/.test(e.message));
});

test('llama 3 (Sequence [ByteLevel, TemplateProcessing "<|begin_of_text|> $A"]): <|begin_of_text|> in front', () => {
  const tok = load(llama3Tokenizer());
  // "hi there" -> "hi", "Ġthere"; hi: h i -> hi(6); Ġthere: Ġ t h e r e -> Ġt, he, Ġthe, re, Ġthere(11)
  assert.deepEqual(tok.encode('hi there'), [13, 6, 11]);
  // "there": t h e r e -> t he r e -> t he re: t(3) he(8) re(10)
  assert.deepEqual(tok.encode('there'), [13, 3, 8, 10]);
  assert.deepEqual(tok.encode('hi there', { addSpecialTokens: false }), [6, 11]);
  assert.deepEqual(tok.postProcessorSpecials, { head: [13], tail: [] });
});

test('gpt2 (ByteLevel post-processor): nothing added', () => {
  const tok = load(gpt2Tokenizer());
  assert.deepEqual(tok.encode('hi there'), [6, 11]);
  assert.deepEqual(tok.encode('there'), [3, 8, 10]);
  assert.deepEqual(tok.encode('hi<|endoftext|>'), [6, 12]);
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.postProcessorSpecials, { head: [], tail: [] });
  assert.deepEqual(tok.encodeParts('hi there'), { head: [], body: [6, 11], tail: [] });
});

test('roberta (RobertaProcessing): <s> ... </s>', () => {
  const tok = load(robertaTokenizer());
  assert.deepEqual(tok.encode('hi there'), [13, 6, 11, 14]);
  assert.deepEqual(tok.encode(''), [13, 14]);
  assert.deepEqual(tok.postProcessorSpecials, { head: [13], tail: [14] });
  // Written by the text at both ends: neither added again.
  assert.deepEqual(tok.encodeParts('<s>hi</s>'), { head: [], body: [13, 6, 14], tail: [] });
});

test('bert (BertProcessing): [CLS] ... [SEP], lowercased WordPiece', () => {
  const tok = load(bertTokenizer());
  // lowercased, split on punctuation: the(5) cat(6) sat(7) .(11)
  assert.deepEqual(tok.encode('The cat sat.'), [2, 5, 6, 7, 11, 3]);
  // greedy longest match: un(8) ##aff(9) ##able(10)
  assert.deepEqual(tok.encode('unaffable'), [2, 8, 9, 10, 3]);
  assert.deepEqual(tok.encode('dog'), [2, 1, 3]); // [UNK]
  assert.deepEqual(tok.encode(''), [2, 3]);
  assert.deepEqual(tok.encode('The cat', { addSpecialTokens: false }), [5, 6]);
  assert.deepEqual(tok.postProcessorSpecials, { head: [2], tail: [3] });
  assert.deepEqual(tok.encodeParts('the cat'), { head: [2], body: [5, 6], tail: [3] });
});

test('the tokenizers this project builds: byte-level add nothing (as SmolLM2), WordPiece [CLS]=2 ... [SEP]=3', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    const tok = load(buildFamilyTokenizer(family, 300));
    assert.deepEqual(tok.postProcessorSpecials, { head: [], tail: [] }, family);
  }
  assert.deepEqual(load(buildFamilyTokenizer('bert', 400)).postProcessorSpecials, { head: [2], tail: [3] });
});

test('a post-processor that rewrites the text\'s tokens is refused at load, naming tokenizer.json', () => {
  // A template whose single sequence is empty drops the text: not "specials around it".
  const { tokenizerJson, tokenizerConfig } = llama2Tokenizer();
  const broken = { ...tokenizerJson, post_processor: { ...(tokenizerJson as { post_processor: object }).post_processor, single: [{ SpecialToken: { id: '<s>', type_id: 0 } }] } };
  // (A class other than LlamaTokenizer, which would rebuild the template from add_bos_token.)
  const config = { ...tokenizerConfig, tokenizer_class: 'PreTrainedTokenizerFast' };
  assert.throws(() => Tokenizer.fromJson(broken, config), (e: unknown) => e instanceof InputError && /tokenizer\.json: its post_processor/.test(e.message));
});
