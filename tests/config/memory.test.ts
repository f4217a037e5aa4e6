/**
 * The memory estimate (src/config/memory.ts): parameter counts equal the published ones and the sum
 * over paramSpecs for every family, task and preset; the estimate's bytes worked out by hand for a
 * toy shape, with the optimizer state by training.optimizer; the check's error names the fields behind the largest parts; RINGTUNE_MEMORY_LIMIT parses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { availableMemory, checkMemory, estimateMemory, parameterCounts, parseByteSize } from '../../src/config/memory.ts';
import { InputError } from '../../src/errors.ts';
import { configFromHF, type Family, type Task } from '../../src/model/config.ts';
import { paramSpecs } from '../../src/model/model.ts';
import { numel } from '../../src/model/params.ts';
import { presetConfig } from '../../src/model/presets.ts';

test('parameter counts: the published GPT-2 small, SmolLM-135M and bert-base (2 labels) numbers', () => {
  assert.equal(parameterCounts(presetConfig('gpt2', 'gpt2-124m'), 'causal-lm').total, 124_439_808);
  assert.equal(parameterCounts(presetConfig('llama', 'llama-135m'), 'causal-lm').total, 134_515_008);
  // bert-base-uncased: 109,482,240 with the pooler (HF BertModel), + 768 x 2 + 2 for the classifier.
  const bert = configFromHF({
    model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12,
    intermediate_size: 3072, max_position_embeddings: 512, type_vocab_size: 2, num_labels: 2,
  });
  assert.equal(parameterCounts(bert, 'classification').total, 109_483_778);
});

test('parameter counts equal the sum over paramSpecs: every family, task, preset, tied or not, biases or not', () => {
  const cases: Array<[Family, Task, Record<string, unknown>]> = [];
  for (const preset of ['tiny', 'small', 'base']) {
    for (const task of ['causal-lm', 'classification'] as const) {
      for (const family of ['gpt2', 'llama'] as const) {
        for (const tie of [true, false]) cases.push([family, task, { preset, tie_word_embeddings: tie, num_labels: 5 }]);
      }
      cases.push(['llama', task, { preset, attention_bias: true, mlp_bias: true, head_dim: 24 }]);
    }
    cases.push(['bert', 'classification', { preset, num_labels: 3, type_vocab_size: 4 }]);
  }
  for (const [family, task, { preset, ...over }] of cases) {
    const base = presetConfig(family, preset as string);
    const cfg = { ...base, ...(over.tie_word_embeddings !== undefined ? { tieEmbeddings: over.tie_word_embeddings as boolean } : {}),
      ...(over.num_labels ? { numLabels: over.num_labels as number } : {}), ...(over.type_vocab_size ? { typeVocabSize: over.type_vocab_size as number } : {}),
      ...(over.attention_bias ? { attentionBias: true, mlpBias: true, headDim: over.head_dim as number } : {}) };
    const specs = paramSpecs(cfg, task).reduce((n, s) => n + numel(s.shape), 0);
    assert.equal(parameterCounts(cfg, task).total, specs, `${family} ${task} ${preset} ${JSON.stringify(over)}`);
  }
});

// A toy GPT-2: V 10, d 4, 2 layers, 2 heads, dFF 16, 8 positions, tied head.
const toy = configFromHF({ model_type: 'gpt2', vocab_size: 10, n_embd: 4, n_layer: 2, n_head: 2, n_inner: 16, n_positions: 8 });

test('estimate by hand: toy GPT-2, micro_batch 2 x max_seq_len 8', () => {
  // Per layer: 2 LayerNorms 4 x 4 = 16, q/k/v/o 4 x (16 + 4) = 80, MLP in 64 + 16 = 80, out 64 + 4 = 68: 244.
  const p = parameterCounts(toy, 'causal-lm');
  assert.deepEqual(p, { embeddings: 40, positions: 32, perLayer: 244, layers: 488, other: 8, total: 568 });
  const train = estimateMemory(toy, 'causal-lm', { purpose: 'train', microBatch: 2, seqLen: 8 });
  const bytes = Object.fromEntries(train.parts.map((x) => [x.name, x.bytes]));
  // 16 bytes per parameter; activations 4 x B 2 x T 8 x L 2 x (12 x 4 + 4 x 16 + 2 x 2 heads x 8) = 18,432;
  // logits 4 x 3 x 2 x 8 x 10 = 1,920. No rotary tables for GPT-2 (learned positions).
  assert.deepEqual(bytes, {
    activations: 18_432, 'transformer layers': 7_808, logits: 1_920, embeddings: 640, 'position embeddings': 512, 'heads and final norm': 128,
  });
  assert.equal(train.totalBytes, 29_440);
  assert.deepEqual(train.parts.map((x) => x.name).slice(0, 3), ['activations', 'transformer layers', 'logits'], 'largest first');
  // Eval: 4 bytes per parameter, one layer's activations (9,216), logits twice (1,280).
  const ev = estimateMemory(toy, 'causal-lm', { purpose: 'eval', microBatch: 2, seqLen: 8 });
  assert.equal(ev.totalBytes, 568 * 4 + 9_216 + 1_280);
  // Llama's rotary tables: cos and sin, positions x head_dim x 4 bytes each.
  const llama = configFromHF({ model_type: 'llama', vocab_size: 10, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 8, max_position_embeddings: 100 });
  const rope = estimateMemory(llama, 'causal-lm', { purpose: 'eval', microBatch: 1, seqLen: 4 }).parts.find((x) => x.name === 'rotary tables');
  assert.equal(rope?.bytes, 2 * 100 * 4 * 4);
});

test('optimizer state by training.optimizer: plain sgd none, sgd with momentum and lion 1 buffer, adam and adamw 2 (4 bytes each per parameter)', () => {
  // toy: 568 parameters; weights + gradients 8 bytes each, plus 4 per state buffer.
  const paramBytes = (optimizer: 'sgd' | 'adam' | 'adamw' | 'lion', momentum: number) => {
    const est = estimateMemory(toy, 'causal-lm', { purpose: 'train', microBatch: 2, seqLen: 8, optimizer: { optimizer, momentum } });
    const layers = est.parts.find((x) => x.name === 'transformer layers')!;
    return { perParam: (est.totalBytes - 18_432 - 1_920) / 568, layers: layers.bytes, because: layers.because };
  };
  assert.deepEqual(paramBytes('sgd', 0), { perParam: 8, layers: 488 * 8, because: 'n_layer 2 x 244 parameters each (n_embd 4, n_inner 16; weights, gradients: 8 bytes each)' });
  assert.equal(paramBytes('sgd', 0.9).perParam, 12);
  assert.match(paramBytes('sgd', 0.9).because, /weights, gradients, SGD momentum buffer: 12 bytes each/);
  assert.equal(paramBytes('adam', 0).perParam, 16);
  assert.match(paramBytes('adam', 0).because, /Adam m and v: 16 bytes each/);
  assert.equal(paramBytes('adamw', 0).perParam, 16);
  assert.equal(paramBytes('lion', 0).perParam, 12);
  assert.match(paramBytes('lion', 0).because, /Lion m: 12 bytes each/);
  // Without an optimizer given, AdamW (the default) as before.
  assert.equal(estimateMemory(toy, 'causal-lm', { purpose: 'train', microBatch: 2, seqLen: 8 }).totalBytes, 29_440);
});

test('checkMemory: passes at the limit; above it the error names the total, the available memory and the fields of the largest parts', () => {
  const est = estimateMemory(toy, 'causal-lm', { purpose: 'train', microBatch: 2, seqLen: 8 });
  checkMemory(est, { bytes: 29_440, source: 'test' }, '/j/job.yaml', '/m/config.json');
  assert.throws(() => checkMemory(est, { bytes: 29_439, source: 'RINGTUNE_MEMORY_LIMIT=29439' }, '/j/job.yaml', '/m/config.json'), (err: Error) => {
    assert.ok(err instanceof InputError);
    const lines = err.message.split('\n');
    assert.equal(lines[0], '/j/job.yaml: training this model needs ~28.8 KiB of memory, 28.7 KiB available (RINGTUNE_MEMORY_LIMIT=29439):');
    // The parts that make up 90% of the total: activations 62.6%, layers 26.5%, logits 6.5%.
    assert.match(lines[1], /^ {2}activations ~18\.0 KiB: training\.micro_batch 2 x data\.max_seq_len 8 tokens x n_layer 2 layers kept/);
    assert.match(lines[2], /^ {2}transformer layers ~7\.63 KiB: n_layer 2 x 244 parameters each \(n_embd 4, n_inner 16; weights, gradients, AdamW m and v/);
    assert.match(lines[3], /^ {2}logits ~1\.88 KiB: training\.micro_batch 2 x data\.max_seq_len 8 x vocab_size 10 x 3 copies$/);
    assert.equal(lines[4], 'Keys are from /m/config.json. Use a smaller model, or lower training.micro_batch or data.max_seq_len.');
    return true;
  });
  // A 4000-layer Llama-7B shape: the layers are nearly everything, and the message leads with them.
  const deep = configFromHF({
    model_type: 'llama', vocab_size: 32000, hidden_size: 4096, num_hidden_layers: 4000, num_attention_heads: 32, intermediate_size: 11008,
  });
  assert.throws(() => checkMemory(estimateMemory(deep, 'causal-lm', { purpose: 'train', microBatch: 1, seqLen: 128 }), { bytes: 64 * 2 ** 30, source: 'test' }, 'job.yaml', 'config.json'),
    /needs ~(\d+\.\d+) TiB of memory, 64\.0 GiB available \(test\):\n {2}transformer layers ~\d+\.\d+ TiB: num_hidden_layers 4000 x 202M parameters each \(hidden_size 4096, intermediate_size 11008;.*\nKeys are from config\.json\. Use a smaller model\.$/);
});

test('RINGTUNE_MEMORY_LIMIT: bytes or K/M/G/T (powers of 1024); anything else is an error naming it', () => {
  assert.deepEqual(availableMemory({ RINGTUNE_MEMORY_LIMIT: '16G' }), { bytes: 16 * 2 ** 30, source: 'RINGTUNE_MEMORY_LIMIT=16G' });
  assert.equal(availableMemory({}).source, 'physical memory; RINGTUNE_MEMORY_LIMIT overrides it');
  assert.ok(availableMemory({ RINGTUNE_MEMORY_LIMIT: '' }).bytes > 2 ** 28);
  for (const [text, bytes] of [['1048576', 2 ** 20], ['512M', 512 * 2 ** 20], ['512MiB', 512 * 2 ** 20], ['1.5g', 1.5 * 2 ** 30], ['2TB', 2 * 2 ** 40], [' 64K ', 65_536]] as const) {
    assert.equal(parseByteSize(text, 'X'), bytes, text);
  }
  for (const bad of ['lots', '0', '-1G', '16Q', '1e9']) {
    assert.throws(() => availableMemory({ RINGTUNE_MEMORY_LIMIT: bad }), (err: Error) =>
      err instanceof InputError && err.message === `RINGTUNE_MEMORY_LIMIT: expected a size in bytes such as 17179869184 or 16G, got "${bad}"`);
  }
});

test('LoRA: the frozen base costs its weights only; the adapter pays gradients and optimizer state (PEFT counts 294,912 trainable for gpt2 r=8 c_attn)', async () => {
  const { loraMemory } = await import('../../src/train/setup.ts');
  const { resolveLora } = await import('../../src/model/lora-config.ts');
  const gpt2 = presetConfig('gpt2', 'gpt2-124m');
  const lora = loraMemory(gpt2, 'causal-lm', resolveLora('gpt2', 'causal-lm', { r: 8, alpha: 16, dropout: 0, useRslora: false }, 'job.yaml'), 'job.yaml');
  // peft's print_trainable_parameters() for GPT-2 small, r=8 on c_attn: 12 x 8 x (768 + 2304).
  assert.equal(lora.trainableParams, 294_912);
  assert.equal(lora.targetedWeights, 12 * 768 * 2304);
  const o = { purpose: 'train' as const, microBatch: 8, seqLen: 512 };
  const full = estimateMemory(gpt2, 'causal-lm', o);
  const peft = estimateMemory(gpt2, 'causal-lm', { ...o, lora });
  const part = (e: typeof full, name: string) => e.parts.find((p) => p.name === name)?.bytes ?? 0;
  assert.equal(part(peft, 'transformer layers'), part(full, 'transformer layers') / 4); // 4 of AdamW's 16 bytes per weight
  assert.equal(part(peft, 'LoRA adapter'), 294_912 * 16);
  assert.equal(part(peft, 'LoRA merged weights'), 8 * 12 * 768 * 2304);
  assert.equal(part(peft, 'activations'), part(full, 'activations'));
  assert.ok(peft.totalBytes < full.totalBytes);
});
