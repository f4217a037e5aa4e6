/**
 * Checkpoints belong to a run: `ringtune local` on an output whose checkpoint directory holds another
 * run's checkpoints refuses before starting any process, naming the directory and both ways out, and
 * leaves the old checkpoints as they were.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeJob, runLocal } from './cluster-helpers.ts';

test('ringtune local refuses an output holding another run\'s checkpoints unless --resume or --overwrite', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-claim-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const job = await makeJob(dir, 'claimjob', { workers: 2, maxSteps: 2 });
  const ckpt = join(dir, 'out-claimjob', 'checkpoints');
  await mkdir(join(ckpt, 'step-00000100'), { recursive: true });
  await writeFile(join(ckpt, 'step-00000100', 'trainer_state.json'), '{}');
  await writeFile(join(ckpt, 'latest'), 'step-00000100\n');
  const started = Date.now();
  const r = await runLocal(job);
  assert.notEqual(r.code, 0);
  assert.match(r.output, /already holds checkpoints: pass --resume to continue that run or --overwrite to start over/);
  assert.doesNotMatch(r.output, /\[coord\]|\[w0\]/, 'no process was started');
  assert.ok(Date.now() - started < 20_000);
  assert.deepEqual((await readdir(ckpt)).sort(), ['latest', 'step-00000100']);
});
