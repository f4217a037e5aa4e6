/**
 * data.add_special_tokens from the job to the prepared examples: a Llama-style tokenizer's <s> in
 * front of every text record by default, none with false; format label refuses false.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';
import { prepareData } from '../../src/data/dataset.ts';
import type { LmExample } from '../../src/data/examples.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { llama2Tokenizer } from '../model/hf-tokenizers.ts';
import { tempDir } from '../train/fixtures.ts';

const tok = (() => {
  const t = llama2Tokenizer();
  return Tokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);
})();

test('data.add_special_tokens: default true adds <s>; false adds nothing; label format refuses false', async (t) => {
  const dir = await tempDir(t);
  const train = join(dir, 'train.jsonl');
  await writeFile(train, ['the cat', 'the', 'cat the'].map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const job = (data: Record<string, unknown>) =>
    compileJob({ model: 'm', data: { train, format: 'text', eval_fraction: 0, ...data }, training: { max_steps: 1 } }, join(dir, 'job.yaml'));

  const on = await prepareData(job({}), tok);
  // "▁the▁cat" = 261 264, "▁the" = 261, "▁cat▁the" = 264 261 (tests/model/tokenizer-specials.test.ts)
  assert.deepEqual((on.train as LmExample[]).map((e) => e.tokens), [[1, 261, 264, 2], [1, 261, 2], [1, 264, 261, 2]]);
  const off = await prepareData(job({ add_special_tokens: false }), tok);
  assert.deepEqual((off.train as LmExample[]).map((e) => e.tokens), [[261, 264, 2], [261, 2], [264, 261, 2]]);
  const packed = await prepareData(job({ packing: true, max_seq_len: 4 }), tok);
  assert.deepEqual((packed.train as LmExample[]).map((e) => e.tokens), [[1, 261, 264, 2], [1, 261, 2, 1], [264, 261, 2]]);

  assert.throws(() => job({ format: 'label', add_special_tokens: false }), (e: unknown) => e instanceof JobSpecError && /data\.add_special_tokens/.test(e.message));
});
