import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { controlCodecs, GrpcStatus, refusalText, tokenMatches } from '../../src/collective/ring-protocol.ts';

test('GrpcStatus is grpc-js\'s status table, name for name and number for number', () => {
  // grpc.status is a numeric TS enum: its string keys are the names.
  const theirs = Object.fromEntries(Object.entries(grpc.status).filter(([name]) => Number.isNaN(Number(name))));
  assert.deepEqual({ ...GrpcStatus }, theirs);
});

test('refusalText names the status as grpc-js would and hints at the token on UNAUTHENTICATED', () => {
  assert.equal(refusalText(7, 'nope'), 'PERMISSION_DENIED: nope');
  assert.equal(refusalText(16, 'missing token'), 'UNAUTHENTICATED: missing token (token mismatch: every rank of a job needs the same token)');
  assert.equal(refusalText(99, 'odd'), '99: odd'); // an unknown code stays a number
});

test('control messages encode as proto3 by field number and round-trip', () => {
  // PullRequest { job_id = 1 (string), rank = 2, world_size = 3 }: tag (number << 3 | wire type), value.
  const pull = { jobId: 'j', rank: 3, worldSize: 8 };
  assert.deepEqual([...controlCodecs.pullRequest.serialize(pull)], [0x0a, 1, 0x6a, 0x10, 3, 0x18, 8]);
  // epoch = 4 (the ring epoch, elastic re-forms), stripe = 5 and connections = 6 (ring.connections):
  // absent on the wire when 0, read back as 0 (a stock grpc-js peer sends none of them).
  assert.deepEqual(controlCodecs.pullRequest.deserialize(controlCodecs.pullRequest.serialize(pull)), { ...pull, epoch: 0, stripe: 0, connections: 0 });
  assert.deepEqual([...controlCodecs.pullRequest.serialize({ ...pull, stripe: 2, connections: 3 })], [0x0a, 1, 0x6a, 0x10, 3, 0x18, 8, 0x28, 2, 0x30, 3]);
  assert.deepEqual([...controlCodecs.pullRequest.serialize({ ...pull, epoch: 5 })], [0x0a, 1, 0x6a, 0x10, 3, 0x18, 8, 0x20, 5]);
  assert.deepEqual(controlCodecs.pingRequest.deserialize(controlCodecs.pingRequest.serialize({ jobId: 'j', rank: 1, epoch: 7 })), { jobId: 'j', rank: 1, epoch: 7 });
  // PingReply decodes with proto3 defaults filled in, and a uint64 step as a number.
  assert.deepEqual(controlCodecs.pingReply.deserialize(Buffer.from([0x0a, 1, 0x6a])), { jobId: 'j', rank: 0, step: 0, inCollective: false });
  const reply = { jobId: 'job-ä', rank: 2, step: 2 ** 40, inCollective: true };
  assert.deepEqual(controlCodecs.pingReply.deserialize(controlCodecs.pingReply.serialize(reply)), reply);
});

test('tokenMatches accepts only the exact token, as a string', () => {
  assert.equal(tokenMatches('secret', 'secret'), true);
  assert.equal(tokenMatches('secreT', 'secret'), false);
  assert.equal(tokenMatches('secret-and-more', 'secret'), false);
  assert.equal(tokenMatches(['secret'], 'secret'), false);
  assert.equal(tokenMatches(undefined, 'secret'), false);
});
