/**
 * The inference server over real HTTP: completions equal what generate() gives for the same prompt
 * and sampling options; chat uses the template; classification returns the label set; bad requests
 * get 400 naming the field; requests are served one at a time and all answered.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createModelDir } from '../../src/model/create.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { startInferenceServer } from '../../src/serve/server.ts';
import { ready, tempDir } from '../train/fixtures.ts';
import { writeTokenizerFiles } from '../../src/model/tokenizer-build.ts';
import { llama2Tokenizer } from '../model/hf-tokenizers.ts';

async function post(port: number, path: string, body: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

test('completions and chat match generate(); bad requests are 400 with the field named', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'llama', preset: 'tiny', out: join(dir, 'm'), seed: 3 });
  const s = await startInferenceServer({ modelDir: join(dir, 'm'), port: 0 });
  t.after(() => s.close());
  const tok = await Tokenizer.fromDir(join(dir, 'm'));
  const { model } = await loadModel(join(dir, 'm'));
  t.after(() => model.dispose());
  const expect = async (ids: number[], o: { temperature?: number; topP?: number; seed?: number }) =>
    tok.decode((await generate(model, ids, { maxNewTokens: 12, stopIds: [tok.eosTokenId!], ...o })).ids, { skipSpecialTokens: true });

  const greedy = await post(s.port, '/v1/completions', { prompt: 'The sea was', max_tokens: 12 });
  assert.equal(greedy.status, 200);
  assert.equal(greedy.json.object, 'text_completion');
  assert.equal(greedy.json.choices[0].text, await expect(tok.encode('The sea was', { addSpecialTokens: false }), {}));
  assert.equal(greedy.json.usage.prompt_tokens, tok.encode('The sea was', { addSpecialTokens: false }).length);
  const sampled = await post(s.port, '/v1/completions', { prompt: 'The sea was', max_tokens: 12, temperature: 0.9, top_p: 0.8, seed: 5 });
  assert.equal(sampled.json.choices[0].text, await expect(tok.encode('The sea was', { addSpecialTokens: false }), { temperature: 0.9, topP: 0.8, seed: 5 }));

  const messages = [{ role: 'user', content: 'Hello' }];
  const chat = await post(s.port, '/v1/chat/completions', { messages, max_tokens: 12 });
  assert.equal(chat.status, 200);
  assert.equal(chat.json.choices[0].message.role, 'assistant');
  assert.equal(chat.json.choices[0].message.content, await expect(tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false }), {}));

  // Concurrent requests are queued and all answered identically.
  const many = await Promise.all([1, 2, 3].map(() => post(s.port, '/v1/completions', { prompt: 'The sea was', max_tokens: 12 })));
  for (const r of many) assert.equal(r.json.choices[0].text, greedy.json.choices[0].text);

  for (const [body, param] of [[{ prompt: 3 }, 'prompt'], [{ prompt: 'x', temperature: -1 }, 'temperature'], [{ prompt: 'x', max_tokens: 0.5 }, 'max_tokens']] as const) {
    const r = await post(s.port, '/v1/completions', body);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, param);
  }
  const broken = await post(s.port, '/v1/completions', '{"prompt": ');
  assert.equal(broken.status, 400);
  assert.match(broken.json.error.message, /not valid JSON/);
  assert.equal((await post(s.port, '/v1/classify', { input: 'x' })).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status, 200);
});

test('a Llama-style tokenizer: completions get <s>, chat gets only its template\'s <s>; add_special_tokens per request and --no-add-special-tokens', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const m = join(dir, 'm');
  await createModelDir({ family: 'llama', preset: 'tiny', out: m, seed: 3 });
  // The hand-written Llama 2 layout (TemplateProcessing "<s> $A"; 271 ids, within the model's vocab).
  await writeTokenizerFiles(m, { ...llama2Tokenizer(), specialTokensMap: {} });
  const s = await startInferenceServer({ modelDir: m, port: 0 });
  t.after(() => s.close());
  const tok = await Tokenizer.fromDir(m);
  const { model } = await loadModel(m);
  t.after(() => model.dispose());
  const expect = async (ids: number[]) => tok.decode((await generate(model, ids, { maxNewTokens: 8, stopIds: [tok.eosTokenId!] })).ids, { skipSpecialTokens: true });

  // tokenizer("the cat") = [<s>=1, ▁the=261, ▁cat=264] (tests/model/tokenizer-specials.test.ts)
  const plain = await post(s.port, '/v1/completions', { prompt: 'the cat', max_tokens: 8 });
  assert.equal(plain.status, 200);
  assert.equal(plain.json.usage.prompt_tokens, 3);
  assert.equal(plain.json.choices[0].text, await expect([1, 261, 264]));
  const without = await post(s.port, '/v1/completions', { prompt: 'the cat', max_tokens: 8, add_special_tokens: false });
  assert.equal(without.json.usage.prompt_tokens, 2);
  assert.equal(without.json.choices[0].text, await expect([261, 264]));
  const bad = await post(s.port, '/v1/completions', { prompt: 'the cat', add_special_tokens: 'yes' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'add_special_tokens');

  // The template renders "<s>[user] the cat [assistant]": one <s>, whether or not specials are asked for.
  const messages = [{ role: 'user', content: 'the cat' }];
  const rendered = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.ok(rendered.startsWith('<s>[user]'));
  const chatIds = [1, ...tok.encode(rendered.slice('<s>'.length), { addSpecialTokens: false })];
  for (const extra of [{}, { add_special_tokens: true }]) {
    const chat = await post(s.port, '/v1/chat/completions', { messages, max_tokens: 8, ...extra });
    assert.equal(chat.status, 200);
    assert.equal(chat.json.usage.prompt_tokens, chatIds.length);
    assert.equal(chat.json.choices[0].message.content, await expect(chatIds));
  }

  // serve --no-add-special-tokens: completions default to none, a request can still ask.
  const off = await startInferenceServer({ modelDir: m, port: 0, addSpecialTokens: false });
  t.after(() => off.close());
  assert.equal((await post(off.port, '/v1/completions', { prompt: 'the cat', max_tokens: 8 })).json.usage.prompt_tokens, 2);
  assert.equal((await post(off.port, '/v1/completions', { prompt: 'the cat', max_tokens: 8, add_special_tokens: true })).json.usage.prompt_tokens, 3);
});

test('classification: labels from config.json, probabilities sum to 1', async (t) => {
  await ready;
  const dir = await tempDir(t);
  await createModelDir({ family: 'bert', preset: 'tiny', out: join(dir, 'b'), labels: ['neg', 'pos'] });
  const s = await startInferenceServer({ modelDir: join(dir, 'b'), port: 0 });
  t.after(() => s.close());
  const r = await post(s.port, '/v1/classify', { input: ['a good day', 'a bad day'] });
  assert.equal(r.status, 200);
  assert.equal(r.json.data.length, 2);
  for (const d of r.json.data) {
    assert.deepEqual(Object.keys(d.scores).sort(), ['neg', 'pos']);
    assert.ok(Math.abs((d.scores.neg as number) + (d.scores.pos as number) - 1) < 1e-5);
    assert.equal(d.label, d.scores.neg > d.scores.pos ? 'neg' : 'pos');
  }
  assert.equal((await post(s.port, '/v1/classify', { input: [''] })).status, 400);
});
