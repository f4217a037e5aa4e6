/**
 * `output` and `checkpoint.dir` are checked when the job compiles: an existing file, or a path under
 * one, is a JobSpecError naming the field (the run used to fail with EEXIST at its first write).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';

const dir = mkdtempSync(join(tmpdir(), 'ringtune-paths-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'a-file'), 'x');
mkdirSync(join(dir, 'existing', 'checkpoints'), { recursive: true });
mkdirSync(join(dir, 'with-file'));
writeFileSync(join(dir, 'with-file', 'checkpoints'), 'x');

const spec = (extra: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1 }, ...extra });
const compile = (extra: Record<string, unknown>) => compileJob(spec(extra), join(dir, 'job.yaml'));
const problems = (extra: Record<string, unknown>): string[] => {
  try {
    compile(extra);
  } catch (err) {
    assert.ok(err instanceof JobSpecError, String(err));
    return err.message.split('\n').slice(1);
  }
  return [];
};

test('directories that exist or can be created pass', () => {
  assert.equal(compile({ output: 'existing' }).outputDir, join(dir, 'existing'));
  assert.equal(compile({ output: 'new/deeper' }).checkpoint.dir, join(dir, 'new', 'deeper', 'checkpoints'));
  assert.equal(compile({ checkpoint: { dir: join(dir, 'existing', 'checkpoints') } }).checkpoint.dir, join(dir, 'existing', 'checkpoints'));
});

test('output naming a file, or under one, is an error naming output (once: not again for the default checkpoint.dir)', () => {
  assert.deepEqual(problems({ output: 'a-file' }), [`  output: ${join(dir, 'a-file')} is a file, not a directory`]);
  assert.deepEqual(problems({ output: 'a-file/run/1' }), [`  output: ${join(dir, 'a-file', 'run', '1')} is under ${join(dir, 'a-file')}, which is a file`]);
});

test('checkpoint.dir naming a file, or under one; the default one (output/checkpoints) says so', () => {
  assert.deepEqual(problems({ checkpoint: { dir: 'a-file/ckpt' } }), [`  checkpoint.dir: ${join(dir, 'a-file', 'ckpt')} is under ${join(dir, 'a-file')}, which is a file`]);
  assert.deepEqual(problems({ output: 'with-file' }), [`  checkpoint.dir: ${join(dir, 'with-file', 'checkpoints')} is a file, not a directory (the default, under output)`]);
  // Listed with the spec's other problems.
  assert.deepEqual(problems({ output: 'a-file', checkpoint: { dir: 'a-file' }, training: { max_steps: 1, micro_batch: 9, global_batch: 8 } }), [
    '  training.micro_batch: 9 is larger than global_batch 8',
    `  output: ${join(dir, 'a-file')} is a file, not a directory`,
    `  checkpoint.dir: ${join(dir, 'a-file')} is a file, not a directory`,
  ]);
});
