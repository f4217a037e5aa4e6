/**
 * trainer_state.json and pruning: checkpoints belong to a run, and pruning only ever lists the
 * pruning run's own checkpoints (the bug: it sorted every step dir, so an earlier run's higher steps
 * pushed the new run's newest checkpoints out and `latest` named a removed one).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  checkpointsBeyond, encodeTrainerState, readTrainerState, stepDirName, trainerState, type TrainerState,
} from '../../src/run/trainer-state.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-tstate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const schedule = { name: 'cosine', peakLr: 1e-3, warmupSteps: 0, totalSteps: 100, minLrRatio: 0.1 };

/** A step dir holding only trainer_state.json (all pruning reads). `runId` undefined: a checkpoint from before run ids. */
async function fakeCheckpoint(dir: string, step: number, runId: string | undefined): Promise<string> {
  const path = join(dir, stepDirName(step));
  await mkdir(path, { recursive: true });
  const state: Partial<TrainerState> = trainerState(step, 10, { runId: runId ?? '', seed: 0, schedule });
  if (runId === undefined) delete state.runId;
  await writeFile(join(path, 'trainer_state.json'), encodeTrainerState(state as TrainerState));
  return path;
}

test('pruning lists only this run\'s checkpoints beyond its newest `keep`, oldest first', async (t) => {
  const dir = await tempDir(t);
  // An earlier run: steps 10..100. This run (after --overwrite had it kept them): steps 1..3.
  for (let s = 10; s <= 100; s += 10) await fakeCheckpoint(dir, s, 'oldrun000000');
  for (const s of [1, 2, 3]) await fakeCheckpoint(dir, s, 'newrun000000');
  await fakeCheckpoint(dir, 5, undefined); // before run ids
  await mkdir(join(dir, stepDirName(7))); // no trainer_state.json: a stranger's directory
  assert.deepEqual(await checkpointsBeyond(dir, 2, 'newrun000000'), [join(dir, stepDirName(1))]);
  assert.deepEqual(await checkpointsBeyond(dir, 1, 'newrun000000'), [1, 2].map((s) => join(dir, stepDirName(s))));
  assert.deepEqual(await checkpointsBeyond(dir, 8, 'oldrun000000'), [10, 20].map((s) => join(dir, stepDirName(s))));
  assert.deepEqual(await checkpointsBeyond(dir, 5, 'newrun000000'), []);
  // A run without an id (resumed from an old checkpoint, never happens now) prunes nothing.
  assert.deepEqual(await checkpointsBeyond(dir, 1, ''), []);
});

test('trainer_state.json keeps the run id and an infinite early-stopping best; labels named "NaN" stay strings', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, stepDirName(4));
  await mkdir(path);
  const state = trainerState(4, 3, { runId: 'abc123def456', seed: 7, schedule, labels: ['NaN', 'Infinity'], earlyStopping: { best: Infinity, badEvals: 1 } });
  await writeFile(join(path, 'trainer_state.json'), encodeTrainerState(state));
  assert.match(await readFile(join(path, 'trainer_state.json'), 'utf8'), /"best": "Infinity"/);
  assert.deepEqual(await readTrainerState(path), { ...state, epoch: 1, stepInEpoch: 1 });
  // Older checkpoints: no run id (reads as ''), an infinite best written as null (EarlyStopper: no best yet).
  const legacy = { step: 4, epoch: 1, stepInEpoch: 1, seed: 7, schedule, earlyStopping: { best: null, badEvals: 0 } };
  await writeFile(join(path, 'trainer_state.json'), JSON.stringify(legacy));
  const read = await readTrainerState(path);
  assert.equal(read.runId, '');
  assert.equal(read.earlyStopping?.best, null);
});
