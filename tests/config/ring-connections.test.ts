// cluster.ring_connections (docs/collective.md, "Striping"): default 1, an integer 1..16, errors naming
// the field; and the ring's own option check (GrpcRing.create) names it too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';
import { compileRingOptions } from '../../src/collective/ring-options.ts';

const spec = (cluster: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1 }, cluster });

test('cluster.ring_connections: default 1, kept when set', () => {
  assert.equal(compileJob(spec({}), '/j/job.yaml').cluster.ringConnections, 1);
  assert.equal(compileJob(spec({ ring_connections: 3 }), '/j/job.yaml').cluster.ringConnections, 3);
});

test('cluster.ring_connections: 0, 17, 1.5 and a string are errors naming the field', () => {
  for (const bad of [0, 17, 1.5, 'two']) {
    assert.throws(() => compileJob(spec({ ring_connections: bad }), '/j/job.yaml'), (err: Error) => {
      assert.ok(err instanceof JobSpecError, String(bad));
      assert.match(err.message, /cluster\.ring_connections/);
      return true;
    });
  }
  assert.throws(() => compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', connections: 0 }), /connections \(cluster\.ring_connections\): expected an integer in \[1, 16\]/);
  assert.throws(() => compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't', connections: 4, listenPort: 65_534 }), /4 stripes need ports 65534\.\.65537/);
  assert.equal(compileRingOptions({ jobId: 'j', rank: 0, worldSize: 2, token: 't' }).connections, 1);
});
