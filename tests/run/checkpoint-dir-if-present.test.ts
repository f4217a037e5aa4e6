/**
 * --resume-if-present (claimOptionsIfPresent): what a coordinator that Kubernetes restarts with the same
 * arguments does with its checkpoint directory. It continues its own job's run, starts fresh in an
 * empty directory (and marks it as this job's), and refuses checkpoints or outputs it cannot tell are
 * its own. Real directories; the chosen options then go through claimCheckpointDir as the coordinator
 * passes them.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { claimCheckpointDir, claimOptionsIfPresent, OWNER_FILE } from '../../src/run/checkpoint-dir.ts';
import { encodeTrainerState, stepDirName, trainerState } from '../../src/run/trainer-state.ts';

async function tempDir(t: TestContext): Promise<{ ckpt: string; out: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-ifpresent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { ckpt: join(dir, 'checkpoints'), out: join(dir, 'out') };
}

const schedule = { name: 'constant', peakLr: 1e-3, warmupSteps: 0, totalSteps: 50, minLrRatio: 0 };

async function checkpoint(dir: string, step: number, runId: string): Promise<void> {
  await mkdir(join(dir, stepDirName(step)), { recursive: true });
  await writeFile(join(dir, stepDirName(step), 'trainer_state.json'), encodeTrainerState(trainerState(step, 10, { runId, seed: 0, schedule })));
  await writeFile(join(dir, 'latest'), stepDirName(step));
}

test('an empty (or missing) directory: a fresh run, and the directory is marked as this job\'s', async (t) => {
  const { ckpt, out } = await tempDir(t);
  assert.deepEqual(await claimOptionsIfPresent(ckpt, 'llama-support', out), { outputDir: out });
  assert.deepEqual(JSON.parse(await readFile(join(ckpt, OWNER_FILE), 'utf8')), { job: 'llama-support' });
  assert.deepEqual((await readdir(ckpt)).sort(), [OWNER_FILE], 'no staging file left behind');
  const claim = await claimCheckpointDir(ckpt, await claimOptionsIfPresent(ckpt, 'llama-support', out));
  assert.equal(claim.resumed, undefined);
});

test('the restarted coordinator of the same job resumes from its latest checkpoint, keeping the run id', async (t) => {
  const { ckpt, out } = await tempDir(t);
  await claimOptionsIfPresent(ckpt, 'llama-support', out);
  await checkpoint(ckpt, 10, 'aaaaaaaaaaaa');
  await checkpoint(ckpt, 20, 'aaaaaaaaaaaa');
  await mkdir(out);
  await writeFile(join(out, 'metrics.jsonl'), '');
  const o = await claimOptionsIfPresent(ckpt, 'llama-support', out);
  assert.deepEqual(o, { resume: true, outputDir: out });
  const claim = await claimCheckpointDir(ckpt, o);
  assert.equal(claim.runId, 'aaaaaaaaaaaa');
  assert.equal(claim.resumed?.state.step, 20);
  assert.deepEqual(await readdir(out), ['metrics.jsonl'], 'a resumed run keeps its outputs');
});

test('an attempt that stopped before its first checkpoint starts over, replacing its own partial outputs', async (t) => {
  const { ckpt, out } = await tempDir(t);
  await claimOptionsIfPresent(ckpt, 'llama-support', out);
  await mkdir(out);
  await writeFile(join(out, 'metrics.jsonl'), '{"type":"train","step":1}\n');
  const o = await claimOptionsIfPresent(ckpt, 'llama-support', out);
  assert.deepEqual(o, { overwrite: true, outputDir: out });
  await claimCheckpointDir(ckpt, o);
  assert.deepEqual(await readdir(out), []);
  assert.deepEqual(await readdir(ckpt), [OWNER_FILE], 'the owner file stays');
});

test("another job's directory is refused, with or without checkpoints, and nothing is touched", async (t) => {
  const { ckpt, out } = await tempDir(t);
  await claimOptionsIfPresent(ckpt, 'bert-intents', out);
  const refused = (e: unknown) => e instanceof InputError && /belongs to job "bert-intents".*not "llama-support"/.test(e.message) && e.message.includes(ckpt);
  await assert.rejects(claimOptionsIfPresent(ckpt, 'llama-support', out), refused);
  await checkpoint(ckpt, 10, 'bbbbbbbbbbbb');
  await assert.rejects(claimOptionsIfPresent(ckpt, 'llama-support', out), refused);
  assert.deepEqual((await readdir(ckpt)).sort(), ['latest', OWNER_FILE, stepDirName(10)].sort());
});

test('checkpoints of a run started without the flag are refused (they may be any job\'s); no owner file is written', async (t) => {
  const { ckpt, out } = await tempDir(t);
  await checkpoint(ckpt, 10, 'cccccccccccc');
  await assert.rejects(claimOptionsIfPresent(ckpt, 'llama-support', out), (e: unknown) =>
    e instanceof InputError && e.message.includes('started without --resume-if-present') && e.message.includes('--resume') && e.message.includes('--overwrite'));
  assert.deepEqual((await readdir(ckpt)).sort(), ['latest', stepDirName(10)]);
});

test("a previous run's outputs with no checkpoint of this job: refused before the directory is marked", async (t) => {
  const { ckpt, out } = await tempDir(t);
  await mkdir(out);
  await writeFile(join(out, 'eval_report.json'), '{}');
  await assert.rejects(claimOptionsIfPresent(ckpt, 'llama-support', out), (e: unknown) => e instanceof InputError && e.message.includes('eval_report.json'));
  // Had it marked the directory, the next attempt would take the outputs for its own and remove them.
  await assert.rejects(readFile(join(ckpt, OWNER_FILE)), { code: 'ENOENT' });
});

test('an unreadable owner file is an error naming the file, not a fresh start', async (t) => {
  const { ckpt, out } = await tempDir(t);
  await mkdir(ckpt);
  await writeFile(join(ckpt, OWNER_FILE), 'llama-support\n');
  await assert.rejects(claimOptionsIfPresent(ckpt, 'llama-support', out), (e: unknown) => e instanceof InputError && e.message.includes(join(ckpt, OWNER_FILE)));
});
