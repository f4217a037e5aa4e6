/**
 * A coordinator or worker whose NATS user may not subscribe to one of its subjects (a permissions
 * table missing a subject, e.g. one a newer ringtune added) ends with an error naming the subject,
 * instead of crashing on an unhandled NATS error or waiting out a timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { subjects } from '../../src/control/subjects.ts';
import { natsRoles } from '../../src/coordinator/local.ts';
import { clusterScratch, makeJob, startCli } from './cluster-helpers.ts';

test('NATS refuses one subscription: the coordinator and a worker exit non-zero naming the subject', async (t) => {
  const roles = natsRoles('permjob');
  const s = subjects('permjob');
  // The coordinator may not hear Leave; the worker may not hear its own Assignment subject.
  roles.coordinator.subscribe = roles.coordinator.subscribe.filter((x) => x !== s.leave);
  roles.worker.subscribe = roles.worker.subscribe.filter((x) => x !== s.worker('*'));
  const { dir, nats, all } = await clusterScratch(t, 'ringtune-nats-perm-', { users: Object.values(roles) });
  const jobFile = await makeJob(dir, 'permjob', { workers: 1, maxSteps: 2 });
  const secret = newJobSecret();
  const env = (role: 'coordinator' | 'worker') => ({
    ...process.env, RINGTUNE_NATS_URL: nats.url, RINGTUNE_JOB_SECRET: secret, RINGTUNE_NATS_USER: roles[role].user, RINGTUNE_NATS_PASSWORD: roles[role].password,
  });
  const coordinator = startCli(['coordinator', jobFile], env('coordinator'), all);
  const worker = startCli(['worker', '--job', 'permjob'], env('worker'), all);
  const [coordinatorCode, workerCode] = await Promise.all([coordinator.exit, worker.exit]);
  assert.notEqual(coordinatorCode, 0, coordinator.output());
  const quoted = (x: string) => x.replaceAll('.', '\\.');
  assert.match(coordinator.output(), new RegExp(`NATS refused the coordinator's subscription to ${quoted(s.leave)} \\('?Permissions Violation`));
  assert.doesNotMatch(coordinator.output(), /Unhandled|NatsError: |at .*node_modules\/nats/, 'a clear error, not a crash');
  assert.notEqual(workerCode, 0, worker.output());
  assert.match(worker.output(), new RegExp(`NATS refused this worker's subscription to ${quoted(s.worker(''))}\\S+ \\('?Permissions Violation`));
});
