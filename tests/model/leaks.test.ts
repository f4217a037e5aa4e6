/** Repeated forward/backward passes leave the tensor count flat (tfjs has no GC for backend memory). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Family, Task } from '../../src/model/config.ts';
import { crossEntropySum } from '../../src/train/loss.ts';
import { idsTensor, makeModel, randomHost, randomIds, ready, tinyConfig } from './helpers.ts';

const cases: Array<[Family, Task]> = [['gpt2', 'causal-lm'], ['llama', 'causal-lm'], ['llama', 'classification'], ['bert', 'classification']];

for (const [family, task] of cases) {
  test(`${family} ${task}: no tensors leak across forward/backward passes`, async () => {
    await ready;
    const cfg = tinyConfig(family);
    const model = makeModel(cfg, task, randomHost(cfg, task, 1));
    const ids = randomIds(2, 8, cfg.vocabSize, 2);
    const step = async () => {
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.forward({ ids: idsTensor(ids), attentionMask: family === 'bert' ? idsTensor(ids.map((r) => r.map(() => 1))) : undefined });
        const n = logits.shape[0];
        return crossEntropySum(logits, tf.zeros([n], 'int32'), tf.ones([n]));
      }, model.variables());
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    };
    await step(); // first pass may create lazily cached constants (rotary tables)
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await step();
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
    assert.equal(tf.memory().numTensors, before - model.specs.length, "dispose frees every variable");
  });
}
