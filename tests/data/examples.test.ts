/** Formats -> tokens and loss masks, checked against what each format promises. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { collateLm } from '../../src/data/batch.ts';
import { ExampleBuilder, pack } from '../../src/data/examples.ts';
import { readRecords } from '../../src/data/records.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { buildFamilyTokenizer } from '../../src/model/tokenizer-build.ts';
import { tempDir } from '../train/fixtures.ts';
import { bertTokenizer, llama2Tokenizer } from '../model/hf-tokenizers.ts';

const built = buildFamilyTokenizer('llama', 600);
const tok = Tokenizer.fromJson(built.tokenizerJson, built.tokenizerConfig);
const fields = { text: 'text', prompt: 'prompt', completion: 'completion', messages: 'messages', label: 'label' };
const rec = (value: Record<string, unknown>) => ({ line: 1, value });
const decodeWhere = (tokens: number[], mask: number[], want: number) => tok.decode(tokens.filter((_, i) => mask[i] === want));

test('text: every token is a target, EOS appended', () => {
  const r = new ExampleBuilder(tok, 'text', fields, 64).lm(rec({ text: 'the cat sat.' }), 'x');
  assert.ok('ok' in r);
  assert.equal(r.ok.tokens.at(-1), tok.eosTokenId);
  assert.ok(r.ok.lossMask.every((m) => m === 1));
  assert.equal(tok.decode(r.ok.tokens.slice(0, -1)), 'the cat sat.');
});

test('prompt-completion: loss only on completion tokens and EOS', () => {
  const r = new ExampleBuilder(tok, 'prompt-completion', fields, 64).lm(rec({ prompt: 'Q: two plus two? A:', completion: ' four' }), 'x');
  assert.ok('ok' in r);
  assert.equal(decodeWhere(r.ok.tokens, r.ok.lossMask, 0), 'Q: two plus two? A:');
  assert.equal(tok.decode(r.ok.tokens.filter((_, i) => r.ok.lossMask[i] === 1), { skipSpecialTokens: true }), ' four');
  // Shifted for training: the first target is the first completion token.
  const b = collateLm([r.ok], 0);
  const firstTarget = b.weights.findIndex((w) => w === 1);
  assert.equal(b.targets[firstTarget], r.ok.tokens[r.ok.lossMask.indexOf(1)]);
  assert.equal(b.lossTokens, r.ok.lossMask.slice(1).reduce((a, c) => a + c, 0));
});

test('messages: the chat template renders the conversation; loss only on assistant turns', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi!' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye.' },
    { role: 'assistant', content: 'See you.' },
  ];
  const r = new ExampleBuilder(tok, 'messages', fields, 256).lm(rec({ messages }), 'x');
  assert.ok('ok' in r);
  // The tokens are exactly the rendered conversation.
  assert.equal(tok.decode(r.ok.tokens), tok.applyChatTemplate(messages));
  // Targets: each assistant content plus its end-of-turn; the role headers are context.
  const targetRuns: string[] = [];
  let run: number[] = [];
  r.ok.tokens.forEach((t, i) => {
    if (r.ok.lossMask[i]) run.push(t);
    else if (run.length) { targetRuns.push(tok.decode(run)); run = []; }
  });
  if (run.length) targetRuns.push(tok.decode(run));
  assert.deepEqual(targetRuns, ['Hello.<|im_end|>\n', 'See you.<|im_end|>\n']);
});

test('messages without an assistant turn, or malformed, are bad records naming the field', () => {
  const b = new ExampleBuilder(tok, 'messages', fields, 256);
  assert.deepEqual(b.lm(rec({ messages: [{ role: 'user', content: 'x' }] }), 'x'), { bad: { field: 'messages', reason: 'has no assistant turn to learn from' } });
  const r = b.lm(rec({ messages: [{ role: 'user' }] }), 'x');
  assert.ok('bad' in r && r.bad.field === 'messages[0]');
});

test('truncation to max_seq_len and packing into full rows keep masks aligned', () => {
  const b = new ExampleBuilder(tok, 'prompt-completion', fields, 6);
  const r = b.lm(rec({ prompt: 'a b c d e f g h', completion: 'i j' }), 'x');
  assert.ok('ok' in r && r.ok.tokens.length === 6 && r.ok.lossMask.length === 6);
  const exs = [1, 2, 3].map((i) => ({ tokens: [i, i, i, 9], lossMask: [0, 1, 1, 1], source: `#${i}` }));
  const packed = pack(exs, 5);
  assert.deepEqual(packed.map((p) => p.tokens), [[1, 1, 1, 9, 2], [2, 2, 9, 3, 3], [3, 9]]);
  assert.deepEqual(packed.map((p) => p.lossMask), [[0, 1, 1, 1, 0], [1, 1, 1, 0, 1], [1, 1]]);
});

test('CSV with a header row, quoted commas, and line numbers', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'd.csv');
  await writeFile(file, 'text,label\n"good, very good",pos\n"bad\nreally",neg\nfine,pos\n');
  const { records } = await readRecords(file, 1000);
  assert.deepEqual(records.map((r) => r.value), [
    { text: 'good, very good', label: 'pos' }, { text: 'bad\nreally', label: 'neg' }, { text: 'fine', label: 'pos' },
  ]);
  assert.deepEqual(records.map((r) => r.line), [2, 3, 5]); // the record starting on line 3 spans two lines
});

// ---- Special tokens (data.add_special_tokens) -------------------------------------------------
// Ids worked out by hand from tests/model/hf-tokenizers.ts (llama2: <s>=1 </s>=2, "▁the"=261,
// "▁cat"=264, "▁"=265; see tests/model/tokenizer-specials.test.ts for the derivations).

const llama2 = (() => {
  const t = llama2Tokenizer();
  return Tokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);
})();

test('llama-style tokenizer: text records start with <s> (context, loss 0) and end with </s>', () => {
  const r = new ExampleBuilder(llama2, 'text', fields, 64).lm(rec({ text: 'the cat' }), 'x');
  assert.ok('ok' in r);
  assert.deepEqual(r.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(r.ok.lossMask, [0, 1, 1, 1]);
  // A record that writes its own <s> gets one, not two.
  const own = new ExampleBuilder(llama2, 'text', fields, 64).lm(rec({ text: '<s>the cat' }), 'x');
  assert.ok('ok' in own);
  assert.deepEqual(own.ok.tokens, [1, 261, 264, 2]);
});

test('llama-style tokenizer: prompt-completion is [<s>] prompt completion </s>, encoded together as TRL does', () => {
  const b = new ExampleBuilder(llama2, 'prompt-completion', fields, 64);
  // tokenizer("the" + " cat") = [1, 261, 264]; tokenizer("the") = [1, 261]: the completion is [264].
  // (Encoded alone, " cat" would be "▁▁cat" = [265, 264].)
  const r = b.lm(rec({ prompt: 'the', completion: ' cat' }), 'x');
  assert.ok('ok' in r);
  assert.deepEqual(r.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(r.ok.lossMask, [0, 0, 1, 1]);
  // The texts merge across the boundary ("the c" + "at"): the completion is encoded alone, "▁at" = ▁ at.
  const merged = b.lm(rec({ prompt: 'the c', completion: 'at' }), 'x');
  assert.ok('ok' in merged);
  assert.deepEqual(merged.ok.tokens, [1, 261, 262, 265, 263, 2]);
  assert.deepEqual(merged.ok.lossMask, [0, 0, 0, 1, 1, 1]);
  // An empty prompt: the BOS is the context the first completion token is predicted from.
  const empty = b.lm(rec({ prompt: '', completion: 'the cat' }), 'x');
  assert.ok('ok' in empty);
  assert.deepEqual(empty.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(empty.ok.lossMask, [0, 1, 1, 1]);
});

test('a tokenizer that adds </s> itself (add_eos_token): the EOS comes once, as a target', () => {
  const t = llama2Tokenizer();
  const eosTok = Tokenizer.fromJson(t.tokenizerJson, { ...t.tokenizerConfig, add_eos_token: true });
  const r = new ExampleBuilder(eosTok, 'text', fields, 64).lm(rec({ text: 'the cat' }), 'x');
  assert.ok('ok' in r);
  assert.deepEqual(r.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(r.ok.lossMask, [0, 1, 1, 1]);
  const pc = new ExampleBuilder(eosTok, 'prompt-completion', fields, 64).lm(rec({ prompt: 'the', completion: ' cat' }), 'x');
  assert.ok('ok' in pc);
  assert.deepEqual(pc.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(pc.ok.lossMask, [0, 0, 1, 1]);
  // Truncated on the right, the tokenizer's </s> is kept (HF truncates before adding specials).
  const cut = new ExampleBuilder(eosTok, 'text', fields, 3).lm(rec({ text: 'the cat' }), 'x');
  assert.ok('ok' in cut);
  assert.deepEqual(cut.ok.tokens, [1, 261, 2]);
});

test('data.add_special_tokens false: nothing added; byte-level (GPT-2-style) tokenizers unchanged either way', () => {
  const off = new ExampleBuilder(llama2, 'text', fields, 64, false).lm(rec({ text: 'the cat' }), 'x');
  assert.ok('ok' in off);
  assert.deepEqual(off.ok.tokens, [261, 264, 2]);
  const pc = new ExampleBuilder(llama2, 'prompt-completion', fields, 64, false).lm(rec({ prompt: 'the', completion: ' cat' }), 'x');
  assert.ok('ok' in pc);
  assert.deepEqual(pc.ok.tokens, [261, 264, 2]);
  assert.deepEqual(pc.ok.lossMask, [0, 1, 1]);
  const gpt2Built = buildFamilyTokenizer('gpt2', 400);
  const gpt2 = Tokenizer.fromJson(gpt2Built.tokenizerJson, gpt2Built.tokenizerConfig);
  for (const add of [true, false]) {
    const r = new ExampleBuilder(gpt2, 'text', fields, 64, add).lm(rec({ text: 'the cat sat.' }), 'x');
    assert.ok('ok' in r);
    assert.deepEqual(r.ok.tokens, [...gpt2.encode('the cat sat.', { addSpecialTokens: false }), gpt2.eosTokenId]);
    assert.ok(r.ok.lossMask.every((m) => m === 1));
  }
});

test('llama-style tokenizer: truncation keeps <s> on either side; packing keeps one <s> per document', () => {
  const text = 'the cat the cat the cat'; // [1] 261 264 261 264 261 264 [2]
  const right = new ExampleBuilder(llama2, 'text', fields, 4).lm(rec({ text }), 'x');
  assert.ok('ok' in right);
  assert.deepEqual(right.ok.tokens, [1, 261, 264, 261]);
  assert.deepEqual(right.ok.lossMask, [0, 1, 1, 1]);
  const leftTok = (() => {
    const t = llama2Tokenizer();
    return Tokenizer.fromJson(t.tokenizerJson, { ...t.tokenizerConfig, truncation_side: 'left' });
  })();
  const left = new ExampleBuilder(leftTok, 'text', fields, 4).lm(rec({ text }), 'x');
  assert.ok('ok' in left);
  assert.deepEqual(left.ok.tokens, [1, 261, 264, 2]);
  assert.deepEqual(left.ok.lossMask, [0, 1, 1, 1]);

  const b = new ExampleBuilder(llama2, 'text', fields, 64);
  const docs = ['the cat', 'the', 'cat the cat'].map((t, i) => {
    const r = b.lm(rec({ text: t }), `#${i}`);
    assert.ok('ok' in r);
    return r.ok;
  });
  const rows = pack(docs, 5);
  const flat = rows.flatMap((r) => r.tokens);
  // [1 261 264 2] [1 261 2] [1 264 261 264 2]: each document once, each with its one <s>, masked.
  assert.deepEqual(flat, [1, 261, 264, 2, 1, 261, 2, 1, 264, 261, 264, 2]);
  assert.deepEqual(rows.flatMap((r) => r.lossMask), flat.map((id) => (id === 1 ? 0 : 1)));
  assert.equal(flat.filter((id) => id === 1).length, docs.length);
});

test('classification: "truncated" counts only examples actually cut, not ones that fit max_seq_len exactly', () => {
  const t = bertTokenizer();
  const tok = Tokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);
  const fields = { text: 'text', prompt: 'prompt', completion: 'completion', messages: 'messages', label: 'label' };
  const texts = ['the cat', 'the cat sat', 'the cat sat there'];
  const lengths = texts.map((x) => tok.encode(x).length); // [CLS] ... [SEP]
  assert.ok(lengths[0] < lengths[1] && lengths[1] < lengths[2], `${lengths}`);
  const maxSeqLen = lengths[1]; // the first fits with room, the second exactly, the third is cut
  const b = new ExampleBuilder(tok, 'label', fields, maxSeqLen);
  const labels = new Map([['pos', 0]]);
  const out = texts.map((text, i) => b.cls({ line: i + 1, value: { text, label: 'pos' } }, `d:${i + 1}`, labels));
  assert.deepEqual(out.map((r) => ('ok' in r ? r.ok.tokens.length : -1)), [lengths[0], maxSeqLen, maxSeqLen]);
  assert.equal(b.truncated, 1);
  const cut = (out[2] as { ok: { tokens: number[] } }).ok.tokens;
  assert.equal(cut.at(-1), tok.encode('x').at(-1), 'the cut example keeps its closing [SEP]');
});
