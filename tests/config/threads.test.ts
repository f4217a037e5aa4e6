/**
 * The native engine's thread count: the job spec's `threads` (validated, default auto), the
 * precedence --threads > RINGTUNE_THREADS > job > auto, and auto per process kind (all cores for one
 * process, cores / workers for `ringtune local`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJob, JobSpecError, parseThreads, threadsFor } from '../../src/config/compile.ts';
import { jobTemplate } from '../../src/config/template.ts';
import { workerThreads } from '../../src/coordinator/local.ts';
import { InputError } from '../../src/errors.ts';
import { parseDocument } from 'yaml';

const spec = (extra: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1 }, ...extra });

test('job spec threads: default auto, a positive integer or "auto"', () => {
  assert.equal(compileJob(spec({}), '/j/job.yaml').threads, 'auto');
  assert.equal(compileJob(spec({ threads: 'auto' }), '/j/job.yaml').threads, 'auto');
  assert.equal(compileJob(spec({ threads: 3 }), '/j/job.yaml').threads, 3);
  // The template's value parses and matches the default.
  const t = parseDocument(jobTemplate({ model: 'm', train: 't.jsonl', format: 'text' })).toJS();
  assert.equal(compileJob(t, '/j/job.yaml').threads, 'auto');
});

test('job spec threads: bad values are errors naming the field and the value', () => {
  for (const [bad, shown] of [[0, '0'], [-2, '-2'], [1.5, '1.5'], ['two', '"two"'], ['', '""'], [null, 'null']] as const) {
    assert.throws(() => compileJob(spec({ threads: bad }), '/j/job.yaml'), (err: Error) => {
      assert.ok(err instanceof JobSpecError);
      assert.match(err.message, new RegExp(`^  threads: expected a positive integer or "auto", got ${shown.replace(/[.]/g, '\\.')}$`, 'm'));
      return true;
    });
  }
});

test('backend: native is a valid job spec choice', () => {
  assert.equal(compileJob(spec({ backend: 'native' }), '/j/job.yaml').backend, 'native');
  assert.throws(() => compileJob(spec({ backend: 'gpu' }), '/j/job.yaml'), /backend: .*native/);
});

test('precedence: explicit (flag or RINGTUNE_THREADS) > job > auto', () => {
  assert.equal(threadsFor(2, 3, 8), 2);
  assert.equal(threadsFor(undefined, 3, 8), 3);
  assert.equal(threadsFor(undefined, 'auto', 8), 8);
  assert.equal(threadsFor(undefined, undefined, 8), 8);
  // An explicit "auto" is a choice too: it overrides the job's number.
  assert.equal(threadsFor('auto', 3, 8), 8);
  assert.equal(threadsFor(5, 'auto', 8), 5);
});

test('parseThreads: integers and "auto"; errors name their source', () => {
  assert.equal(parseThreads('4', '--threads'), 4);
  assert.equal(parseThreads(' auto ', '--threads'), 'auto');
  for (const bad of ['0', '-1', '1.5', 'x', '', ' ', '2cores']) {
    assert.throws(() => parseThreads(bad, 'RINGTUNE_THREADS'), (err: Error) =>
      err instanceof InputError && err.message === `RINGTUNE_THREADS: expected a positive integer or "auto", got "${bad}"`);
  }
});

test('ringtune local: auto = floor(cores / workers), at least 1; flag > env > job', () => {
  assert.equal(workerThreads(undefined, undefined, 'auto', 2, 8), 4);
  assert.equal(workerThreads(undefined, undefined, 'auto', 3, 8), 2);
  assert.equal(workerThreads(undefined, undefined, 'auto', 2, 2), 1);
  assert.equal(workerThreads(undefined, undefined, 'auto', 4, 2), 1);
  assert.equal(workerThreads(undefined, undefined, 'auto', 1, 2), 2);
  assert.equal(workerThreads(undefined, undefined, 3, 4, 2), 3);
  assert.equal(workerThreads(undefined, '2', 3, 4, 2), 2);
  assert.equal(workerThreads(1, '2', 3, 4, 2), 1);
  assert.equal(workerThreads(undefined, 'auto', 3, 2, 8), 4);
  assert.equal(workerThreads(undefined, '', 3, 2, 8), 3, 'an empty variable is unset');
  assert.throws(() => workerThreads(undefined, 'many', 3, 2, 8), /RINGTUNE_THREADS: expected a positive integer or "auto", got "many"/);
});
