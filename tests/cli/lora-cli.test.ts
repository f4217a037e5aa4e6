/**
 * LoRA from the command line: a LoRA run's adapter, `ringtune merge` (refusing to replace without
 * --overwrite), and --adapter on generate and eval give what the merged model gives; --model may name
 * the adapter directory itself (its base from base_model_name_or_path).
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseModel, ready, runCli, tempDir, trainLoraAdapter } from '../train/fixtures.ts';

const run = runCli;
const lastJson = (stdout: string) => JSON.parse(stdout.slice(stdout.indexOf('{')));

test('LoRA train -> merge -> generate / eval with --adapter equal the merged model', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const base = await baseModel(dir, 'gpt2');
  const adapter = await trainLoraAdapter(dir, base);
  assert.deepEqual((await readdir(adapter)).filter((f) => f.startsWith('adapter_')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);

  const merged = join(dir, 'merged');
  const m1 = run(['merge', '--base', base, '--adapter', adapter, '--output', merged]);
  assert.equal(m1.status, 0, m1.stderr);
  assert.match(m1.stdout, /\(4 adapted modules, causal-lm\)/); // c_attn and c_fc of 2 layers
  const m2 = run(['merge', '--base', base, '--adapter', adapter, '--output', merged]);
  assert.notEqual(m2.status, 0);
  assert.match(m2.stderr, /--output .*merged exists; pass --overwrite/);
  assert.equal(run(['merge', '--base', base, '--adapter', adapter, '--output', merged, '--overwrite']).status, 0);

  const gen = (args: string[]) => {
    const r = run(['generate', ...args, '--prompt', 'the cat', '--max-tokens', '8']);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const viaMerged = gen(['--model', merged]);
  assert.equal(gen(['--model', base, '--adapter', adapter]), viaMerged);
  assert.equal(gen(['--model', adapter]), viaMerged, '--model naming the adapter directory');
  assert.notEqual(gen(['--model', base]), viaMerged, 'the adapter changes the generation');

  const evalLoss = (args: string[]) => {
    const r = run(['eval', ...args, '--data', join(dir, 'train.jsonl'), '--format', 'text']);
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r.stdout).loss as number;
  };
  const lm = evalLoss(['--model', merged]);
  assert.ok(Math.abs(evalLoss(['--model', base, '--adapter', adapter]) - lm) < 1e-5 * lm);
  const bad = run(['generate', '--model', base, '--adapter', base, '--prompt', 'x']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--adapter .*no adapter_config\.json there/);
});
