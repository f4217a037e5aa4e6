/**
 * How `ringtune sweep` runs its trials: native threads shared out among parallel trials, and the
 * flag combinations refused before anything is written (each error names the flag).
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parallelThreads } from '../../src/sweep/sweep.ts';
import { trialArgs } from '../../src/sweep/run-trial.ts';
import { setup, sweepCli } from './helpers.ts';

test('parallelThreads: cores / (parallel x workers), at least 1; --threads, one trial at a time and --cluster keep their own', () => {
  assert.equal(parallelThreads({ parallel: 2 }, 8), '4');
  assert.equal(parallelThreads({ parallel: 3 }, 8), '2');
  assert.equal(parallelThreads({ parallel: 2, workers: 2 }, 2), '1');
  assert.equal(parallelThreads({ parallel: 1 }, 8), undefined);
  assert.equal(parallelThreads({ parallel: 2, threads: '3' }, 8), '3');
  assert.equal(parallelThreads({ parallel: 2, cluster: { nats: 'nats://x:4222', jobs: ['a', 'b'] } }, 8), undefined);
});

test('trialArgs: train, local, or a coordinator on the cluster (no backend or threads: the workers have their own)', () => {
  assert.deepEqual(trialArgs({ jobFile: 'j.yaml', backend: 'cpu', threads: '2' }, 'fresh'), ['train', 'j.yaml', '--backend', 'cpu', '--threads', '2']);
  assert.deepEqual(trialArgs({ jobFile: 'j.yaml', workers: 2 }, 'resume'), ['local', 'j.yaml', '--workers', '2', '--resume']);
  assert.deepEqual(trialArgs({ jobFile: 'j.yaml', workers: 2, backend: 'cpu', threads: '2', cluster: { nats: 'nats://n:4222', secretFile: '/s' } }, 'overwrite'),
    ['coordinator', 'j.yaml', '--nats', 'nats://n:4222', '--metrics-port', '0', '--secret-file', '/s', '--workers', '2', '--overwrite']);
});

test('refused before anything is written: --parallel beyond the cluster\'s job names, --job / --secret-file without --cluster, a bad job name', async (t) => {
  const dir = await setup(t, ['space:', '  training.lr: [0.001, 0.01]', 'metric: eval_loss']);
  const file = join(dir, 'sweep.yaml');
  const cases: Array<[string[], RegExp]> = [
    [['--cluster', 'nats://127.0.0.1:1', '--parallel', '2'], /error: --parallel 2 with --cluster needs 2 job names \(--job lm gives 1\)/],
    [['--job', 'a,b'], /error: --job names what a running cluster serves: it needs --cluster NATS_URL/],
    [['--secret-file', 'x'], /error: --secret-file names what a running cluster serves: it needs --cluster NATS_URL/],
    [['--cluster', 'nats://127.0.0.1:1', '--job', 'a b'], /error: .*trial-0001 .* is not a valid job[\s\S]*name: letters, digits/],
  ];
  for (const [args, message] of cases) {
    const r = sweepCli([file, ...args]);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, message);
  }
  await assert.rejects(access(join(dir, 'sw')), 'no sweep directory was made');
});
