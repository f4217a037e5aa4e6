/**
 * config.json sizes: each must be a positive integer within SIZE_LIMITS, heads must divide the hidden
 * size; every problem is an InputError naming the file and the family's own key, all listed at once,
 * raised before anything the size would allocate.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { configFromHF, HF_SIZE_KEYS, SIZE_LIMITS, type Family } from '../../src/model/config.ts';
import { presetHFConfig, PRESETS } from '../../src/model/presets.ts';

const FILE = '/m/config.json';
const rejects = (json: Record<string, unknown>, message: string | RegExp) =>
  assert.throws(() => configFromHF(json, FILE), (err: Error) => {
    assert.ok(err instanceof InputError, `${err.name}: ${err.message}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });

test('the issue\'s absurd sizes: 1e6 layers, 1e9 positions, each named by its key', () => {
  const llama = presetHFConfig('llama', 'tiny');
  rejects({ ...llama, num_hidden_layers: 1e6 }, `${FILE}: field "num_hidden_layers" is 1000000, above ringtune's limit of 4096 (no published model comes near it: a typo?)`);
  rejects({ ...llama, max_position_embeddings: 1e9 }, `${FILE}: field "max_position_embeddings" is 1000000000, above ringtune's limit of 16777216 (no published model comes near it: a typo?)`);
  rejects({ ...presetHFConfig('gpt2', 'tiny'), n_positions: 1e9 }, /field "n_positions" is 1000000000, above/);
  rejects({ ...presetHFConfig('bert', 'tiny'), num_labels: 1e9 }, /field "num_labels" is 1000000000, above/);
});

test('every size key of every family: non-integer, zero, negative and one past the limit are rejected; the limit itself passes', () => {
  for (const family of ['gpt2', 'llama', 'bert'] as Family[]) {
    const base = presetHFConfig(family, 'tiny');
    for (const [field, key] of Object.entries(HF_SIZE_KEYS[family])) {
      for (const bad of [2.5, 0, -3]) rejects({ ...base, [key]: bad }, new RegExp(`^${FILE}: field "${key}" must be a positive integer, got ${bad}$`));
      const limit = SIZE_LIMITS[field as keyof typeof SIZE_LIMITS];
      rejects({ ...base, [key]: limit + 1 }, new RegExp(`^${FILE}: field "${key}" is ${limit + 1}, above ringtune's limit of ${limit} `));
    }
  }
  // At the limits (nothing is allocated by parsing): 4096 layers and 2^24 positions are accepted.
  const cfg = configFromHF({ ...presetHFConfig('llama', 'tiny'), num_hidden_layers: 4096, max_position_embeddings: 2 ** 24 }, FILE);
  assert.equal(cfg.nLayers, 4096);
  assert.equal(cfg.maxPositions, 2 ** 24);
});

test('all problems at once; heads must divide the hidden size (and kv heads the heads)', () => {
  rejects({ ...presetHFConfig('gpt2', 'tiny'), n_embd: 64.5, n_layer: 1e6 },
    `${FILE}: 2 problems:\n  field "n_embd" must be a positive integer, got 64.5\n  field "n_layer" is 1000000, above ringtune's limit of 4096 (no published model comes near it: a typo?)`);
  rejects({ ...presetHFConfig('bert', 'tiny'), hidden_size: 66 }, `${FILE}: field "hidden_size" 66 is not divisible by "num_attention_heads" 4`);
  rejects({ ...presetHFConfig('llama', 'tiny'), num_key_value_heads: 3 }, `${FILE}: field "num_attention_heads" 4 is not a multiple of "num_key_value_heads" 3`);
  // Llama with an explicit head_dim need not divide hidden_size (as before).
  assert.equal(configFromHF({ ...presetHFConfig('llama', 'tiny'), hidden_size: 66, head_dim: 16 }, FILE).headDim, 16);
});

test('every preset parses unchanged', () => {
  for (const [preset, shape] of Object.entries(PRESETS)) {
    for (const family of ('families' in shape ? shape.families : ['gpt2', 'llama', 'bert']) as Family[]) {
      assert.equal(configFromHF(presetHFConfig(family, preset), FILE).nLayers, shape.layers, `${family}/${preset}`);
    }
  }
});
