/**
 * The truncation rule worked out by hand: which end is cut, and the post-processor's special tokens
 * (BERT's [CLS] ... [SEP]) kept, while GPT-2's plain encoding is simply cut.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { buildFamilyTokenizer } from '../../src/model/tokenizer-build.ts';
import { encodeTruncated, truncateIds } from '../../src/model/truncation.ts';

const ids = [100, 1, 2, 3, 4, 5, 101]; // [head] t0..t4 [tail]

test('truncateIds: right keeps the beginning, left the end; specials at both ends survive', () => {
  assert.deepEqual(truncateIds(ids, 5, 'right', { head: 1, tail: 1 }), [100, 1, 2, 3, 101]);
  assert.deepEqual(truncateIds(ids, 5, 'left', { head: 1, tail: 1 }), [100, 3, 4, 5, 101]);
  assert.deepEqual(truncateIds(ids, 5, 'right'), [100, 1, 2, 3, 4]);
  assert.deepEqual(truncateIds(ids, 5, 'left'), [2, 3, 4, 5, 101]);
  assert.deepEqual(truncateIds(ids, 2, 'right', { head: 1, tail: 1 }), [100, 101]); // no text left, specials kept
  assert.equal(truncateIds(ids, 7, 'right', { head: 1, tail: 1 }), ids); // fits: untouched, not copied
  assert.throws(() => truncateIds(ids, 1, 'right', { head: 1, tail: 1 }), /no room for the 2 special tokens/);
});

const tok = (family: 'gpt2' | 'bert', config: Record<string, unknown> = {}) => {
  const b = buildFamilyTokenizer(family, family === 'bert' ? 400 : 300);
  return Tokenizer.fromJson(b.tokenizerJson, { ...b.tokenizerConfig, ...config });
};
const TEXT = 'the old ship sailed over the cold river to the town';

test('bert: [CLS] and [SEP] kept, the text cut on the tokenizer\'s side', () => {
  const t = tok('bert');
  const plain = t.encode(TEXT, { addSpecialTokens: false });
  assert.ok(plain.length > 6, `${plain.length} tokens`);
  assert.equal(t.truncationSide, 'right');
  assert.deepEqual(encodeTruncated(t, TEXT, 6), [t.clsTokenId, ...plain.slice(0, 4), t.sepTokenId]);
  const left = tok('bert', { truncation_side: 'left' });
  assert.deepEqual(encodeTruncated(left, TEXT, 6), [t.clsTokenId, ...plain.slice(-4), t.sepTokenId]);
  assert.deepEqual(encodeTruncated(t, TEXT, 100), t.encode(TEXT));
});

test('gpt2: nothing added, a plain cut (the last text token is not kept at the last position)', () => {
  const t = tok('gpt2');
  const full = t.encode(TEXT);
  assert.deepEqual(full, t.encode(TEXT, { addSpecialTokens: false }));
  assert.deepEqual(encodeTruncated(t, TEXT, 5), full.slice(0, 5));
  assert.deepEqual(encodeTruncated(tok('gpt2', { truncation_side: 'left' }), TEXT, 5), full.slice(-5));
});

test('tokenizer_config: truncation_side must be right or left; model_max_length read when real', () => {
  assert.throws(() => tok('gpt2', { truncation_side: 'middle' }), /truncation_side must be "right" or "left", got "middle"/);
  assert.equal(tok('gpt2', { model_max_length: 64 }).modelMaxLength, 64);
  assert.equal(tok('gpt2', { model_max_length: 1e30 }).modelMaxLength, undefined); // HF's "no limit"
});
