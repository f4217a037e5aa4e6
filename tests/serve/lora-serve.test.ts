/** `ringtune serve --adapter`: completions over real HTTP equal generate() on the merged model. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createModelDir } from '../../src/model/create.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { attachNewAdapter, mergeToDir, saveAdapter } from '../../src/model/peft.ts';
import { resolveLora } from '../../src/model/lora-config.ts';
import type { HostTensor } from '../../src/model/safetensors.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { startInferenceServer } from '../../src/serve/server.ts';
import { Rng } from '../../src/util/rng.ts';
import { ready, tempDir } from '../train/fixtures.ts';

test('serve with --adapter answers as the merged model does', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const base = join(dir, 'm');
  await createModelDir({ family: 'llama', preset: 'tiny', out: base, seed: 3 });
  const { model } = await loadModel(base);
  const adapter = attachNewAdapter(model, resolveLora('llama', 'causal-lm', { r: 4, alpha: 32, dropout: 0, useRslora: false, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, 'test'), 1, 'test');
  // Non-zero B (a fresh adapter would change nothing): large enough to change greedy choices.
  const rng = new Rng(2);
  const values = new Map<string, HostTensor>();
  for (const [name, v] of adapter.trainable.params) values.set(name, { shape: [...v.shape], data: Float32Array.from({ length: v.size }, () => 0.5 * rng.normal()) });
  await saveAdapter(model, join(dir, 'ad'), { baseModel: base, tokenizerFrom: base, values });
  model.dispose();
  await mergeToDir(base, join(dir, 'ad'), join(dir, 'merged'));

  const s = await startInferenceServer({ modelDir: base, adapterDir: join(dir, 'ad'), port: 0 });
  t.after(() => s.close());
  const tok = await Tokenizer.fromDir(base);
  const ids = tok.encode('The sea was', { addSpecialTokens: false });
  const text = async (dirName: string) => {
    const { model: m } = await loadModel(join(dir, dirName));
    const out = tok.decode((await generate(m, ids, { maxNewTokens: 12, stopIds: [tok.eosTokenId!] })).ids, { skipSpecialTokens: true });
    m.dispose();
    return out;
  };
  const res = await fetch(`http://127.0.0.1:${s.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'The sea was', max_tokens: 12 }) });
  const body = (await res.json()) as { choices: Array<{ text: string }> };
  assert.equal(res.status, 200);
  assert.equal(body.choices[0].text, await text('merged'));
  assert.notEqual(body.choices[0].text, await text('m'), 'the adapter changes the answer');
  const models = (await (await fetch(`http://127.0.0.1:${s.port}/v1/models`)).json()) as { data: Array<{ id: string }> };
  assert.equal(models.data[0].id, 'ad');
});
