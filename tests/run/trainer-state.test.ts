/**
 * run/trainer-state.ts: the position a step count means, the `latest` pointer (absent, valid,
 * garbage), trainer_state.json read back or refused with the file named, and which checkpoint
 * directories retention removes.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CheckpointCorruptError } from '../../src/errors.ts';
import { checkpointsBeyond, latestCheckpoint, readTrainerState, stepDirName, trainerState } from '../../src/run/trainer-state.ts';
import { tempDir } from './helpers.ts';

const REST = { runId: 'run-a', seed: 7, schedule: { name: 'cosine', peakLr: 3e-4, warmupSteps: 2, totalSteps: 40, minLrRatio: 0.1 } };

test('trainerState: epoch and position within it from the step count', () => {
  // 25 steps of 10 per epoch: epochs 0 and 1 done, 5 steps into epoch 2.
  assert.deepEqual(trainerState(25, 10, REST), { step: 25, epoch: 2, stepInEpoch: 5, ...REST });
  assert.deepEqual(trainerState(20, 10, REST), { step: 20, epoch: 2, stepInEpoch: 0, ...REST });
  assert.deepEqual(trainerState(0, 10, REST), { step: 0, epoch: 0, stepInEpoch: 0, ...REST });
  assert.equal(stepDirName(42), 'step-00000042');
});

test('latestCheckpoint: no dir or no pointer -> undefined; a step dir name -> its path', async (t) => {
  const dir = await tempDir(t);
  assert.equal(await latestCheckpoint(join(dir, 'absent')), undefined);
  assert.equal(await latestCheckpoint(dir), undefined);
  await writeFile(join(dir, 'latest'), 'step-00000012\n'); // a trailing newline, as an editor leaves it
  assert.equal(await latestCheckpoint(dir), join(dir, 'step-00000012'));
});

test('latestCheckpoint: a pointer that names no step dir is CheckpointCorruptError naming `latest`', async (t) => {
  const dir = await tempDir(t);
  for (const garbage of ['', 'hello', 'step-12', '../step-00000012', '/etc/step-00000012', 'step-00000012/../../x']) {
    await writeFile(join(dir, 'latest'), garbage);
    await assert.rejects(latestCheckpoint(dir), (err: Error) => {
      assert.ok(err instanceof CheckpointCorruptError, `${JSON.stringify(garbage)}: ${err.name}`);
      assert.ok(err.message.includes(join(dir, 'latest')), err.message);
      assert.ok(err.message.includes(`"${garbage.trim()}"`), err.message);
      return true;
    });
  }
});

test('readTrainerState: round trip; bad JSON or no file -> CheckpointCorruptError naming the file', async (t) => {
  const dir = await tempDir(t);
  const ckpt = join(dir, stepDirName(25));
  await mkdir(ckpt);
  const state = { ...trainerState(25, 10, REST), earlyStopping: { best: 1.25, badEvals: 1 }, labels: ['neg', 'pos'] };
  await writeFile(join(ckpt, 'trainer_state.json'), JSON.stringify(state));
  assert.deepEqual(await readTrainerState(ckpt), state);

  const file = join(ckpt, 'trainer_state.json');
  await writeFile(file, '{"step": 25, "epo'); // torn
  await assert.rejects(readTrainerState(ckpt), (err: Error) =>
    err instanceof CheckpointCorruptError && err.message.startsWith(file) && /unreadable/.test(err.message) && /latest/.test(err.message));
  await assert.rejects(readTrainerState(join(dir, stepDirName(30))), (err: Error) =>
    err instanceof CheckpointCorruptError && err.message.includes(join(dir, stepDirName(30), 'trainer_state.json')));
});

test('readTrainerState: valid JSON that is not a trainer state', async (t) => {
  const ckpt = join(await tempDir(t), stepDirName(5));
  await mkdir(ckpt);
  for (const text of ['{}', '[]', 'null', '{"step":"five","epoch":0,"stepInEpoch":0}']) {
    await writeFile(join(ckpt, 'trainer_state.json'), text);
    await assert.rejects(readTrainerState(ckpt), (err: Error) => err instanceof CheckpointCorruptError && err.message.includes('trainer_state.json'), text);
  }
});

test('checkpointsBeyond: step dirs past the newest `keep`, oldest first, in step order; other names untouched', async (t) => {
  const dir = await tempDir(t);
  for (const step of [100, 9, 10, 2]) {
    await mkdir(join(dir, stepDirName(step)));
    await writeFile(join(dir, stepDirName(step), 'trainer_state.json'), JSON.stringify(trainerState(step, 10, REST)));
  }
  // Another run's checkpoint is never this run's to prune.
  await mkdir(join(dir, stepDirName(1)));
  await writeFile(join(dir, stepDirName(1), 'trainer_state.json'), JSON.stringify(trainerState(1, 10, { ...REST, runId: 'run-b' })));
  await mkdir(join(dir, 'step-7')); // not a checkpoint name
  await mkdir(join(dir, '.step-00000011.staging'));
  await writeFile(join(dir, 'latest'), stepDirName(100));
  const at = (...steps: number[]) => steps.map((s) => join(dir, stepDirName(s)));
  assert.deepEqual(await checkpointsBeyond(dir, 2, 'run-a'), at(2, 9)); // keeps 10 and 100 (9 < 10 < 100, not "10" < "100" < "9")
  assert.deepEqual(await checkpointsBeyond(dir, 1, 'run-a'), at(2, 9, 10));
  assert.deepEqual(await checkpointsBeyond(dir, 4, 'run-a'), []);
  assert.deepEqual(await checkpointsBeyond(dir, 10, 'run-a'), []);
});
