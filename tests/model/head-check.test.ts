/**
 * Commands that need a head refuse a directory without it, naming the directory and what it is:
 * the helper, serve's routes (404) and the CLI's classify / generate, which used to load a causal LM
 * as a classifier with a random head and answer LABEL_1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { createModelDir } from '../../src/model/create.ts';
import { loadModelWithHead, WrongHeadError } from '../../src/model/head-check.ts';
import { startInferenceServer } from '../../src/serve/server.ts';
import { ready, tempDir } from '../train/fixtures.ts';

const CLI = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
const CLASSIFY = { command: 'ringtune classify', otherCommand: 'ringtune generate' };
const GENERATE = { command: 'ringtune generate', otherCommand: 'ringtune classify' };

async function dirs(t: import('node:test').TestContext) {
  await ready;
  const dir = await tempDir(t);
  const lm = join(dir, 'lm');
  const cls = join(dir, 'cls');
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: lm, seed: 1 });
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: cls, task: 'classification', labels: ['neg', 'pos'], seed: 1 });
  return { lm, cls };
}

test('loadModelWithHead: the right head loads; the wrong one is a WrongHeadError naming dir, kind and what to use', async (t) => {
  const { lm, cls } = await dirs(t);
  (await loadModelWithHead(lm, 'causal-lm', GENERATE)).model.dispose();
  (await loadModelWithHead(cls, 'classification', CLASSIFY)).model.dispose();
  await assert.rejects(loadModelWithHead(lm, 'classification', CLASSIFY), (err: WrongHeadError) => {
    assert.equal(err.name, 'WrongHeadError');
    assert.equal(err.message, `${lm} is a causal language model (GPT2LMHeadModel): ringtune classify needs a sequence classifier. ` +
      'Use ringtune generate for it, or fine-tune it into a classifier (task: classification, data with labels)');
    assert.deepEqual([err.dir, err.has, err.needs], [lm, 'causal-lm', 'classification']);
    return true;
  });
  await assert.rejects(loadModelWithHead(cls, 'causal-lm', GENERATE),
    { name: 'WrongHeadError', message: `${cls} is a sequence classifier (GPT2ForSequenceClassification, labels neg, pos): ringtune generate needs a causal language model. Use ringtune classify for it` });
});

test('serve: /v1/classify on a causal LM and /v1/completions on a classifier are 404 with the same message', async (t) => {
  const { lm, cls } = await dirs(t);
  const post = async (port: number, path: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, message: ((await res.json()) as { error?: { message: string } }).error?.message };
  };
  const a = await startInferenceServer({ modelDir: lm, port: 0 });
  t.after(() => a.close());
  assert.deepEqual(await post(a.port, '/v1/classify', { input: 'x' }), {
    status: 404, message: 'model lm is a causal language model (GPT2LMHeadModel): /v1/classify needs a sequence classifier. Use /v1/completions for it, or fine-tune it into a classifier (task: classification, data with labels)',
  });
  const b = await startInferenceServer({ modelDir: cls, port: 0 });
  t.after(() => b.close());
  const r = await post(b.port, '/v1/completions', { prompt: 'x' });
  assert.equal(r.status, 404);
  assert.match(r.message!, /^model cls is a sequence classifier \(GPT2ForSequenceClassification, labels neg, pos\): .* needs a causal language model\. Use \/v1\/classify for it$/);
  const long = await post(a.port, '/v1/completions', { prompt: 'the sea '.repeat(200) });
  assert.equal(long.status, 400);
  assert.match(long.message!, /^prompt has \d+ tokens; the model allows 128 positions .* prompts are not truncated/);
});

test('CLI: classify on a causal LM and generate on a classifier exit 1 with the message, nothing on stdout', async (t) => {
  const { lm, cls } = await dirs(t);
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  const c = run(['classify', '--model', lm, '--text', 'hello there']);
  assert.equal(c.status, 1, c.stderr);
  assert.equal(c.stdout, '');
  assert.match(c.stderr, new RegExp(`${lm} is a causal language model \\(GPT2LMHeadModel\\): ringtune classify needs a sequence classifier`));
  const g = run(['generate', '--model', cls, '--prompt', 'hello']);
  assert.equal(g.status, 1, g.stderr);
  assert.equal(g.stdout, '');
  assert.match(g.stderr, new RegExp(`${cls} is a sequence classifier .*: ringtune generate needs a causal language model`));
});
