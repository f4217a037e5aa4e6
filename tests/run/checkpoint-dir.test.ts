/**
 * claimCheckpointDir, the one check every entry point makes before writing checkpoints: a fresh run
 * refuses a directory holding checkpoints; --overwrite removes them; --resume continues the run
 * `latest` names (run id and carried history); staging leftovers of a crash are cleared either way.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CheckpointCorruptError, InputError } from '../../src/errors.ts';
import { claimCheckpointDir } from '../../src/run/checkpoint-dir.ts';
import { encodeHistory } from '../../src/run/history.ts';
import { encodeTrainerState, stepDirName, trainerState } from '../../src/run/trainer-state.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-claim-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const schedule = { name: 'constant', peakLr: 1e-3, warmupSteps: 0, totalSteps: 50, minLrRatio: 0 };

async function checkpoint(dir: string, step: number, runId: string, name = stepDirName(step)): Promise<void> {
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(join(dir, name, 'trainer_state.json'), encodeTrainerState(trainerState(step, 10, { runId, seed: 0, schedule })));
  await writeFile(join(dir, name, 'history.jsonl'), encodeHistory([...Array(step).keys()].map((i) => ({ type: 'train', step: i + 1, loss: 1, grad_norm: 1, count: 4 }))));
}

const list = async (dir: string) => (await readdir(dir)).sort();

test('a fresh run: new run id; a missing or empty directory is fine', async (t) => {
  const dir = await tempDir(t);
  const a = await claimCheckpointDir(join(dir, 'not-yet'), {});
  const b = await claimCheckpointDir(dir, {});
  assert.match(a.runId, /^[0-9a-f]{12}$/);
  assert.notEqual(a.runId, b.runId);
  assert.equal(a.resumed, undefined);
});

test('a fresh run refuses a directory holding checkpoints, naming it and both flags, and touches nothing', async (t) => {
  const dir = await tempDir(t);
  for (const held of [stepDirName(3), 'latest', `.${stepDirName(3)}.tmp-12-ab.old`]) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, held), { recursive: true });
    await writeFile(join(dir, '.latest.tmp-1-ff'), '');
    await assert.rejects(claimCheckpointDir(dir, {}), (err: Error) =>
      err instanceof InputError && err.message.includes(dir) && err.message.includes(held) && /--resume .* --overwrite/.test(err.message));
    assert.deepEqual(await list(dir), ['.latest.tmp-1-ff', held].sort());
  }
  await assert.rejects(claimCheckpointDir(dir, { resume: true, overwrite: true }), /pass one of them/);
});

test('staging leftovers are removed; a saved old version whose checkpoint is missing is put back', async (t) => {
  const dir = await tempDir(t);
  await checkpoint(dir, 4, 'run000000001');
  await checkpoint(dir, 8, 'run000000001', `.${stepDirName(8)}.tmp-77-0a0b0c0d.old`); // crash between the two renames
  await checkpoint(dir, 4, 'run000000001', `.${stepDirName(4)}.tmp-77-1a1b1c1d.old`); // step-4 is there: stale
  await mkdir(join(dir, `.${stepDirName(12)}.tmp-77-2a2b2c2d`)); // a checkpoint being written
  await writeFile(join(dir, '.latest.tmp-77-3a3b3c3d'), 'step-00000012\n');
  await writeFile(join(dir, 'latest'), `${stepDirName(8)}\n`);
  await writeFile(join(dir, 'notes.txt'), 'mine');
  const claim = await claimCheckpointDir(dir, { resume: true });
  assert.deepEqual(await list(dir), ['latest', 'notes.txt', stepDirName(4), stepDirName(8)]);
  assert.equal(claim.resumed?.state.step, 8);
});

test('--overwrite removes `latest` and every step dir, and starts a new run id', async (t) => {
  const dir = await tempDir(t);
  for (const s of [90, 100]) await checkpoint(dir, s, 'oldrun000000');
  await writeFile(join(dir, 'latest'), `${stepDirName(100)}\n`);
  await writeFile(join(dir, 'notes.txt'), 'mine');
  const claim = await claimCheckpointDir(dir, { overwrite: true });
  assert.notEqual(claim.runId, 'oldrun000000');
  assert.equal(claim.resumed, undefined);
  assert.deepEqual(await list(dir), ['notes.txt']);
});

test('--resume continues the run `latest` names: its run id, state and carried history', async (t) => {
  const dir = await tempDir(t);
  await checkpoint(dir, 6, 'run000000abc');
  await writeFile(join(dir, 'latest'), `${stepDirName(6)}\n`);
  const claim = await claimCheckpointDir(dir, { resume: true });
  assert.equal(claim.runId, 'run000000abc');
  assert.equal(claim.resumed?.checkpoint, join(dir, stepDirName(6)));
  assert.equal(claim.resumed?.state.step, 6);
  assert.deepEqual(claim.resumed?.history.map((h) => h.step), [1, 2, 3, 4, 5, 6]);
});

test('--resume errors: no `latest`; `latest` naming a missing checkpoint; a checkpoint from before run ids', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(claimCheckpointDir(dir, { resume: true }), (err: Error) => err instanceof InputError && err.message.includes(`no checkpoint in ${dir}`));
  await checkpoint(dir, 2, 'run000000abc');
  await writeFile(join(dir, 'latest'), `${stepDirName(3)}\n`);
  await assert.rejects(claimCheckpointDir(dir, { resume: true }), (err: Error) =>
    err instanceof CheckpointCorruptError && err.message.includes(stepDirName(3)) && err.message.includes(`one of ${stepDirName(2)}`) && err.message.includes('--overwrite'));
  await writeFile(join(dir, 'latest'), `${stepDirName(2)}\n`);
  await writeFile(join(dir, stepDirName(2), 'trainer_state.json'), JSON.stringify({ step: 2, epoch: 0, stepInEpoch: 2, seed: 0, schedule }));
  await rm(join(dir, stepDirName(2), 'history.jsonl'));
  const legacy = await claimCheckpointDir(dir, { resume: true });
  assert.match(legacy.runId, /^[0-9a-f]{12}$/);
  assert.deepEqual(legacy.resumed?.history, []);
});
