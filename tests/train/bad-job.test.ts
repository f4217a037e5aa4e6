/**
 * Late checks made early (issue 11): a job whose model, sizes or paths cannot work fails before any
 * weights load or output is touched, with an error naming the field: absurd config.json sizes, a
 * model too large for the memory, data.max_seq_len past the model's positions, a global batch larger
 * than the training set, an output path that is a file. The previous run's outputs keep their bytes
 * and mtimes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { JobSpecError } from '../../src/config/compile.ts';
import { InputError } from '../../src/errors.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

/** path -> sha256 and mtime of every file under `dir`. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      const s = await stat(p);
      if (s.isDirectory()) await walk(p);
      else out.set(p, `${createHash('sha256').update(await readFile(p)).digest('hex')} ${s.mtimeMs}`);
    }
  };
  await walk(dir);
  return out;
}

/** A copy of `model` whose config.json has `changes`. */
async function editedModel(model: string, to: string, changes: Record<string, unknown>): Promise<string> {
  await cp(model, to, { recursive: true });
  const file = join(to, 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...changes }));
  return to;
}

test('bad jobs fail before loading weights or touching outputs, naming the field', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2'); // tiny: 128 positions
  await writeLines(join(dir, 'train.jsonl'), lmLines(40, 1)); // 36 train + 4 eval (eval_fraction 0.1)
  const spec = (extra: Record<string, unknown> = {}, training: Record<string, unknown> = {}) => job(dir, {
    model, data: { train: 'train.jsonl', format: 'text' }, ...extra,
    training: { max_steps: 2, global_batch: 8, ...training }, checkpoint: { every_n_steps: 1 },
  });
  await train(spec(), quiet);
  const before = await snapshot(join(dir, 'out'));
  assert.ok([...before.keys()].some((p) => p.endsWith('metrics.jsonl')) && [...before.keys()].some((p) => p.includes('checkpoints')));

  const deep = await editedModel(model, join(dir, 'deep'), { n_layer: 1e6 });
  const longPositions = await editedModel(model, join(dir, 'positions'), { n_positions: 1e9 });
  const cases: Array<[string, ReturnType<typeof spec>, RegExp, Record<string, string>?]> = [
    ['num layers 1e6', spec({ model: deep }), /deep\/config\.json: field "n_layer" is 1000000, above ringtune's limit of 4096/],
    ['positions 1e9', spec({ model: longPositions }), /positions\/config\.json: field "n_positions" is 1000000000, above/],
    ['max_seq_len past positions', spec({ data: { train: 'train.jsonl', format: 'text', max_seq_len: 129 } }),
      /job\.yaml: data\.max_seq_len 129 is larger than the model's 128 positions \(.*base-gpt2\/config\.json n_positions\); set data\.max_seq_len to at most 128$/],
    ['global batch 1e9', spec({}, { global_batch: 1e9 }),
      /job\.yaml: training\.global_batch 1000000000 is larger than the 36 training examples in .*train\.jsonl, after holding out 4 for eval \(data\.eval_fraction 0\.1\); set training\.global_batch to at most 36/],
    // Tiny GPT-2 at micro_batch 8 x 128 tokens: ~15.5 MiB to run, ~30.2 MiB to train.
    ['memory: too small to run', spec(), /job\.yaml: running this model needs ~15\.5 MiB of memory, 1\.00 MiB available \(RINGTUNE_MEMORY_LIMIT=1M\):\n {2}activations/, { RINGTUNE_MEMORY_LIMIT: '1M' }],
    ['memory: runs but cannot train', spec(), /job\.yaml: training this model needs ~30\.2 MiB of memory, 20\.0 MiB available \(RINGTUNE_MEMORY_LIMIT=20M\):\n {2}activations ~\d+\.\d MiB: training\.micro_batch 8 x data\.max_seq_len 128 tokens x n_layer 2 layers kept for the backward pass/, { RINGTUNE_MEMORY_LIMIT: '20M' }],
  ];
  for (const [name, bad, pattern, env = {}] of cases) {
    Object.assign(process.env, env);
    const started = performance.now();
    try {
      await assert.rejects(train(bad, { ...quiet, overwrite: true }), (err: Error) => {
        assert.ok(err instanceof InputError, `${name}: ${err.name} ${err.message}`);
        assert.match(err.message, pattern, name);
        return true;
      });
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
    assert.ok(performance.now() - started < 10_000, `${name}: took ${performance.now() - started} ms`);
  }
  assert.deepEqual(await snapshot(join(dir, 'out')), before);
});

test('ringtune train: output naming a file is a one-line job spec error, exit 1, nothing written', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'results'), 'not a directory\n');
  await writeFile(join(dir, 'job.yaml'), 'model: model\ndata: {train: train.jsonl, format: text}\ntraining: {max_steps: 1}\noutput: results\n');
  assert.throws(() => job(dir, { model: 'model', data: { train: 'train.jsonl', format: 'text' }, training: { max_steps: 1 }, output: 'results/run-1' }),
    (err: Error) => err instanceof JobSpecError && err.message.endsWith(`output: ${join(dir, 'results', 'run-1')} is under ${join(dir, 'results')}, which is a file`));
  const cli = join(resolve(import.meta.dirname, '../..'), 'bin', 'ringtune.js');
  const r = spawnSync(process.execPath, [cli, 'train', join(dir, 'job.yaml')], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`job\\.yaml: 1 problem in the job spec:\\n {2}output: ${join(dir, 'results').replace(/[.]/g, '\\.')} is a file, not a directory`));
  assert.doesNotMatch(r.stderr, /\n\s+at |EEXIST/, 'no stack trace, no EEXIST');
  assert.deepEqual((await readdir(dir)).sort(), ['job.yaml', 'results']);
  assert.equal(await readFile(join(dir, 'results'), 'utf8'), 'not a directory\n');
});
