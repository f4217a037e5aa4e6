/**
 * --set / --output (src/config/overrides.ts) go through the same schema as the job file; a problem
 * with an overridden field names the flag as typed, then the key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { JobSpecError, loadJobFile } from '../../src/config/compile.ts';
import { applyOverrides, parseSet } from '../../src/config/overrides.ts';
import { InputError } from '../../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'ringtune-overrides-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'job.yaml');
writeFileSync(file, 'model: model\ndata: {train: train.jsonl, format: text}\ntraining: {max_steps: 10, lr: 0.001}\noutput: out\n');

const problems = async (set: string[]): Promise<string[]> => {
  const err = await loadJobFile(file, { set }).then(() => undefined, (e: Error) => e);
  assert.ok(err instanceof JobSpecError, String(err));
  return err.message.split('\n').slice(1);
};

test('values are YAML scalars and flow lists; later --set wins; sections are created', () => {
  assert.deepEqual(parseSet('training.lr=3e-4'), { key: ['training', 'lr'], value: 3e-4 });
  assert.deepEqual(parseSet('data.packing=true').value, true);
  assert.deepEqual(parseSet('training.no_decay=[biases, norms]').value, ['biases', 'norms']);
  assert.deepEqual(parseSet('name=my job').value, 'my job');
  const raw = { training: { lr: 1 } };
  const { spec, origins } = applyOverrides(raw, { set: ['training.lr=2', 'training.lr=3', 'eval.every_n_steps=5'] });
  assert.deepEqual(spec, { training: { lr: 3 }, eval: { every_n_steps: 5 } });
  assert.deepEqual(raw, { training: { lr: 1 } }, 'the parsed YAML is not modified');
  assert.equal(origins.get('training.lr'), '--set training.lr=3');
});

test('a malformed --set is an InputError naming the argument', () => {
  for (const [arg, why] of [['training.lr', /expected key\.path=value/], ['=3', /expected key\.path=value/], ['training..lr=1', /expected key\.path=value/],
    ['training.lr=', /empty value/], ['training.lr=[1', /not a YAML scalar/]] as const) {
    assert.throws(() => parseSet(arg), (e: Error) => e instanceof InputError && e.message.startsWith(`--set ${arg}: `) && why.test(e.message), arg);
  }
  assert.throws(() => applyOverrides({ name: 'x' }, { set: ['name.first=a'] }), /--set name\.first=a: name is "x", not a section with keys/);
});

test('the overrides compile: numbers, lists, --output relative to the working directory', async () => {
  const job = await loadJobFile(file, { set: ['training.lr=3e-4', 'training.max_steps=200', 'training.no_decay=[biases]'], output: 'elsewhere/run-2' });
  assert.equal(job.training.peakLr, 3e-4);
  assert.equal(job.training.maxSteps, 200);
  assert.deepEqual(job.training.noDecay, ['biases']);
  assert.equal(job.outputDir, resolve('elsewhere/run-2'));
  assert.equal(job.checkpoint.dir, resolve('elsewhere/run-2/checkpoints'));
  assert.equal((await loadJobFile(file)).outputDir, join(dir, 'out'));
});

test('schema problems name the flag as typed, then the key; unknown keys are refused as in the file', async () => {
  assert.deepEqual(await problems(['training.lr=abc']), ['  --set training.lr=abc: training.lr: Invalid input: expected number, received string']);
  assert.deepEqual(await problems(['training.lrr=1']), ['  --set training.lrr=1: training: Unrecognized key: "lrr" (lrr)']);
  assert.deepEqual(await problems(['training.micro_batch=64']), ['  --set training.micro_batch=64: training.micro_batch: 64 is larger than global_batch 8']);
  // Problems of fields from the file stay as they were; all are listed at once.
  assert.equal((await problems(['training.lr=abc', 'data.format=csv'])).length, 2);
});

test('the bad-record hint says how the user gave on_bad_record', async () => {
  assert.match((await loadJobFile(file)).data.skipBadRecordsHint, /^set data\.on_bad_record: skip in the job spec/);
  assert.equal((await loadJobFile(file, { set: ['data.on_bad_record=fail'] })).data.skipBadRecordsHint, 'pass --set data.on_bad_record=skip');
});
