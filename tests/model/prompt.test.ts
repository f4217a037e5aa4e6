/**
 * The ids `ringtune generate`, `serve` and the demo feed the model for a prompt (src/model/prompt.ts):
 * HF's tokenizer(prompt) for text, apply_chat_template(tokenize=True) for messages. Expected ids are
 * worked out by hand from tests/model/hf-tokenizers.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { promptIds } from '../../src/model/prompt.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { gpt2Tokenizer, llama2Tokenizer } from './hf-tokenizers.ts';

const load = (t: { tokenizerJson: object; tokenizerConfig: object }) => Tokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);

/**
 * "<s>[user] the cat [assistant]": after <s> the normalizer gives "▁[user]▁the▁cat▁[assistant]";
 * letters outside the vocab fall back to bytes (3 + byte): [=94 u=120 s=118 r=117 ]=96 i=108 n=113;
 * e=268 a=270 t=266 are pieces; "▁the"=261 "▁cat"=264 "▁"=265.
 */
const CHAT_IDS = [1, 265, 94, 120, 118, 268, 117, 96, 261, 264, 265, 94, 270, 118, 118, 108, 118, 266, 270, 113, 266, 96];

test('llama-style: a plain prompt starts with <s>, a chat prompt has only its template\'s <s>', () => {
  const tok = load(llama2Tokenizer());
  assert.deepEqual(promptIds(tok, { text: 'the cat' }), [1, 261, 264]);
  assert.deepEqual(promptIds(tok, { text: 'the cat' }, { addSpecialTokens: false }), [261, 264]);
  assert.deepEqual(promptIds(tok, { text: '' }), [1]);
  // A prompt that already starts with <s> (e.g. a rendered template pasted in): still one.
  assert.deepEqual(promptIds(tok, { text: '<s>the cat' }), [1, 261, 264]);
  const messages = [{ role: 'user', content: 'the cat' }];
  assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), '<s>[user] the cat [assistant]');
  assert.deepEqual(promptIds(tok, { messages }), CHAT_IDS);
  // Asking for specials on top of the template (vLLM's chat add_special_tokens) never doubles the BOS.
  assert.deepEqual(promptIds(tok, { messages }, { addSpecialTokens: true }), CHAT_IDS);
});

test('gpt2-style: nothing added either way', () => {
  const tok = load(gpt2Tokenizer());
  assert.deepEqual(promptIds(tok, { text: 'hi there' }), [6, 11]);
  assert.deepEqual(promptIds(tok, { text: 'hi there' }, { addSpecialTokens: false }), [6, 11]);
});
