/**
 * tfjs logits vs the independent float64 reference (tests/model/reference), every family and head,
 * including GQA, tied/untied heads, attention/MLP biases, right padding and BERT key masks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type { Family, Task } from '../../src/model/config.ts';
import { bertSeqCls64, gpt2CausalLM64, gpt2SeqCls64, llamaCausalLM64, llamaSeqCls64 } from './reference/forward64.ts';
import { hfView, idsTensor, makeModel, randomHost, randomIds, ready, relErr, tinyConfig, type TinyOptions } from './helpers.ts';

const B = 2;
const T = 7;
const lengths = [7, 4];

interface Case { family: Family; task: Task; opts?: TinyOptions; label: string }
const cases: Case[] = [
  { family: 'gpt2', task: 'causal-lm', label: 'GPT2LMHeadModel (tied)' },
  { family: 'gpt2', task: 'causal-lm', opts: { tie: false }, label: 'GPT2LMHeadModel (untied)' },
  { family: 'gpt2', task: 'classification', label: 'GPT2ForSequenceClassification' },
  { family: 'llama', task: 'causal-lm', label: 'LlamaForCausalLM (GQA 4/2, untied)' },
  { family: 'llama', task: 'causal-lm', opts: { tie: true, nKvHeads: 4, bias: true }, label: 'LlamaForCausalLM (MHA, tied, biases)' },
  { family: 'llama', task: 'causal-lm', opts: { nKvHeads: 1 }, label: 'LlamaForCausalLM (MQA)' },
  { family: 'llama', task: 'classification', label: 'LlamaForSequenceClassification' },
  { family: 'bert', task: 'classification', label: 'BertForSequenceClassification (padded)' },
];

for (const c of cases) {
  test(`${c.label}: logits match the float64 reference to 1e-4`, async () => {
    await ready;
    const cfg = tinyConfig(c.family, c.opts);
    const host = randomHost(cfg, c.task, 11);
    const { config, weights } = hfView(cfg, c.task, host);
    const ids = randomIds(B, T, cfg.vocabSize, 5);
    const mask = ids.map((row, b) => row.map((_, t) => (t < lengths[b] ? 1 : 0)));
    const tokenTypes = ids.map((row) => row.map((_, t) => (t >= 3 ? 1 : 0)));
    const model = makeModel(cfg, c.task, host);
    const got = tf.tidy(() =>
      model.forward({
        ids: idsTensor(ids),
        lengths,
        attentionMask: c.family === 'bert' ? idsTensor(mask) : undefined,
        tokenTypeIds: c.family === 'bert' ? idsTensor(tokenTypes) : undefined,
      }),
    );
    const actual = await got.data();
    got.dispose();
    model.dispose();
    const expected =
      c.family === 'gpt2' ? (c.task === 'causal-lm' ? gpt2CausalLM64(config, weights, ids) : gpt2SeqCls64(config, weights, ids, lengths))
      : c.family === 'llama' ? (c.task === 'causal-lm' ? llamaCausalLM64(config, weights, ids) : llamaSeqCls64(config, weights, ids, lengths))
      : bertSeqCls64(config, weights, ids, mask, tokenTypes);
    assert.equal(actual.length, expected.length);
    // The logits must be far from trivial for the comparison to mean anything.
    assert.ok(Math.max(...expected.map(Math.abs)) > 0.5, 'reference logits are too small to be a test');
    const err = relErr(actual, expected);
    assert.ok(err < 1e-4, `max relative error ${err.toExponential(2)}`);
  });
}
