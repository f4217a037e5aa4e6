/**
 * Generation: the KV-cached greedy path equals recomputing the full sequence every step; sampling
 * obeys temperature/top-k/top-p and is reproducible from the seed; EOS and length limits stop it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { generate, pickToken } from '../../src/model/generate.ts';
import { Rng } from '../../src/util/rng.ts';
import { idsTensor, makeModel, randomHost, ready, tinyConfig } from './helpers.ts';

for (const family of ['gpt2', 'llama'] as const) {
  test(`${family}: cached greedy generation equals full recomputation, without leaks`, async () => {
    await ready;
    const cfg = tinyConfig(family);
    const model = makeModel(cfg, 'causal-lm', randomHost(cfg, 'causal-lm', 21));
    const prompt = [3, 14, 15, 9];
    tf.tidy(() => model.forward({ ids: idsTensor([prompt]) })).dispose(); // creates the shared rotary tables once
    const before = tf.memory().numTensors;
    const got = await generate(model, prompt, { maxNewTokens: 10, stopIds: [] });
    assert.equal(tf.memory().numTensors, before);
    const seq = [...prompt];
    for (let i = 0; i < 10; i++) {
      const logits = tf.tidy(() => model.forward({ ids: idsTensor([seq]) }));
      const all = await logits.data();
      logits.dispose();
      const last = all.subarray((seq.length - 1) * cfg.vocabSize, seq.length * cfg.vocabSize) as Float32Array;
      seq.push(pickToken(last, { temperature: 0 }, new Rng(0)));
    }
    assert.deepEqual(got, { ids: seq.slice(prompt.length), stoppedBy: 'max_tokens' });
    assert.ok(new Set(got.ids).size > 1, 'degenerate model: generated a single repeated token');
    model.dispose();
  });
}

test('generation stops at EOS (excluded) and at the position limit', async () => {
  await ready;
  const cfg = tinyConfig('llama');
  const model = makeModel(cfg, 'causal-lm', randomHost(cfg, 'causal-lm', 21));
  const free = await generate(model, [1, 2], { maxNewTokens: 5, stopIds: [] });
  const stopped = await generate(model, [1, 2], { maxNewTokens: 5, stopIds: [free.ids[2]] });
  assert.deepEqual(stopped, { ids: free.ids.slice(0, free.ids.indexOf(free.ids[2])), stoppedBy: 'eos' });
  const long = await generate(model, [1, 2], { maxNewTokens: 100, stopIds: [] });
  assert.equal(long.stoppedBy, 'max_positions');
  // Every position feeds one token; the token predicted at the last position needs none.
  assert.equal(long.ids.length + 2, cfg.maxPositions + 1);
  model.dispose();
});

test('sampling: seeded, top-k 1 is greedy, top-p keeps the nucleus, frequencies follow softmax(z/T)', () => {
  const logits = Float32Array.from([2, 1, 0, -1]);
  const draw = (o: Parameters<typeof pickToken>[1], seed: number, n: number) => {
    const rng = new Rng(seed);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[pickToken(logits, o, rng)]++;
    return counts;
  };
  assert.deepEqual(draw({ temperature: 1, topK: 1 }, 1, 50), [50, 0, 0, 0]);
  assert.deepEqual(draw({ temperature: 0.7 }, 5, 200), draw({ temperature: 0.7 }, 5, 200));
  // softmax([2,1,0,-1]) = [0.6439, 0.2369, 0.0871, 0.0321]; top-p 0.8 keeps tokens 0 and 1 only.
  const nucleus = draw({ temperature: 1, topP: 0.8 }, 2, 4000);
  assert.equal(nucleus[2] + nucleus[3], 0);
  assert.ok(Math.abs(nucleus[0] / 4000 - 0.6439 / 0.8808) < 0.03, `${nucleus}`);
  const full = draw({ temperature: 1 }, 3, 20000);
  [0.6439, 0.2369, 0.0871, 0.0321].forEach((p, i) => assert.ok(Math.abs(full[i] / 20000 - p) < 0.01, `${full}`));
  // Temperature 2 flattens: softmax([1, 0.5, 0, -0.5]) = [2.7183, 1.6487, 1, 0.6065] / 5.9735
  const warm = draw({ temperature: 2 }, 4, 20000);
  [0.4551, 0.2760, 0.1674, 0.1015].forEach((p, i) => assert.ok(Math.abs(warm[i] / 20000 - p) < 0.01, `${warm}`));
});
