/**
 * bf16 on the wire, 2 workers over real gRPC (ringtune local): each step's global loss-token count in
 * metrics.jsonl is the number of loss tokens of that step's global batch counted from the dataset here,
 * odd and above 256, which bf16 (8 significant bits) cannot carry: the step's extras travel as the
 * all-reduce's exact tail (fp32). Each step is one whole epoch of the training set (global batch = the
 * set), so the batch's count does not depend on the shuffle: it is the sum over the file's examples.
 * The same job again over a striped ring (cluster.ring_connections 2: two connections and threads per
 * link, the tail in one stripe's slice) gives every step's numbers and the final model bit for bit.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { ExampleBuilder } from '../../src/data/examples.ts';
import { createModelDir } from '../../src/model/create.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { lmLines, ready, writeLines } from '../train/fixtures.ts';
import { history, runLocal } from './cluster-helpers.ts';
import { assertSameFinal } from './elastic-helpers.ts';

const MAX_SEQ_LEN = 64;
const FIELDS = { text: 'text', prompt: 'prompt', completion: 'completion', messages: 'messages', label: 'label' };

test('bf16, 2 workers: metrics.jsonl count of every step == the loss tokens of its global batch (odd, > 256); a striped ring gives the same bits', async () => {
  await ready;
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-exact-'));
  try {
    const model = join(dir, 'base');
    await createModelDir({ family: 'llama', preset: 'tiny', out: model, seed: 1 });
    // Loss tokens of an example as collate counts them: its loss mask after the first position.
    const builder = new ExampleBuilder(await Tokenizer.fromDir(model), 'text', FIELDS, MAX_SEQ_LEN);
    const lossTokens = (line: string, i: number) => {
      const r = builder.lm({ line: i + 1, value: JSON.parse(line) as Record<string, unknown> }, `train:${i + 1}`);
      assert.ok('ok' in r, `line ${i + 1}`);
      return r.ok.lossMask.slice(1).reduce((a, b) => a + b, 0);
    };
    // The first training set of 30+ lines whose count is odd and above 256.
    let lines: string[] = [];
    let expected = 0;
    for (let n = 30; n < 200 && !(expected > 256 && expected % 2 === 1); n++) {
      lines = lmLines(n, 11);
      expected = lines.reduce((s, l, i) => s + lossTokens(l, i), 0);
    }
    assert.ok(expected > 256 && expected % 2 === 1, `no odd count above 256 found (${expected})`);

    await writeLines(join(dir, 'train.jsonl'), lines);
    await writeLines(join(dir, 'eval.jsonl'), lmLines(4, 12));
    const output = join(dir, 'out');
    const job = {
      name: 'exact-count', model, output,
      data: { train: join(dir, 'train.jsonl'), eval: join(dir, 'eval.jsonl'), format: 'text', max_seq_len: MAX_SEQ_LEN },
      training: { max_steps: 2, global_batch: lines.length, micro_batch: 8, lr: 1e-3, seed: 3 },
      checkpoint: { every_n_steps: 0 },
      eval: { every_n_steps: 0 },
      cluster: { workers: 2, heartbeat_interval_ms: 200, heartbeat_timeout_ms: 5000, codec: 'bf16' },
    };
    const file = join(dir, 'job.yaml');
    await writeFile(file, stringify(job));
    const r = await runLocal(file);
    assert.equal(r.code, 0, r.output);
    const steps = (await history(output)).filter((x) => x.type === 'train');
    assert.deepEqual(steps.map((x) => x.step), [1, 2]);
    assert.deepEqual(steps.map((x) => x.workers), [2, 2]);
    for (const s of steps) assert.equal(s.count, expected, `step ${s.step}: count ${s.count}, the batch has ${expected} loss tokens`);
    // The reported loss is the all-reduced loss sum over that exact count: finite and plausible.
    for (const s of steps) assert.ok(Number.isFinite(Number(s.loss)) && Number(s.loss) > 0, `step ${s.step} loss ${s.loss}`);

    const striped = join(dir, 'out-striped');
    const file2 = join(dir, 'job-striped.yaml');
    await writeFile(file2, stringify({ ...job, name: 'exact-count-striped', output: striped, cluster: { ...job.cluster, ring_connections: 2 } }));
    const r2 = await runLocal(file2);
    assert.equal(r2.code, 0, r2.output);
    assert.equal(r2.output.match(/ring of 2 connections per link/g)?.length, 2, 'both ranks striped');
    const steps2 = (await history(striped)).filter((x) => x.type === 'train');
    const numbers = (h: typeof steps) => h.map((x) => [x.step, x.count, x.loss, x.grad_norm]);
    assert.deepEqual(numbers(steps2), numbers(steps), 'the striped ring: the same count, loss and gradient norm every step');
    // The tensors, not the file: its __metadata__ names the job.
    await assertSameFinal(striped, output, 'the 1-connection run');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
