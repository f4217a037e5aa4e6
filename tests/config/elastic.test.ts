// The job's `elastic:` block (docs/reliability.md): defaults keep today's behaviour (fail; min = max =
// cluster.workers); min_workers <= cluster.workers <= max_workers, errors naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';

const spec = (extra: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1 }, ...extra });

test('elastic defaults: on_loss fail, min = max = cluster.workers, wait 60 s', () => {
  assert.deepEqual(compileJob(spec({ cluster: { workers: 3 } }), '/j/job.yaml').elastic, { minWorkers: 3, maxWorkers: 3, onLoss: 'fail', waitTimeoutMs: 60_000 });
  assert.deepEqual(compileJob(spec({ cluster: { workers: 3 }, elastic: { on_loss: 'wait', min_workers: 2, max_workers: 5, wait_timeout_ms: 1500 } }), '/j/job.yaml').elastic,
    { minWorkers: 2, maxWorkers: 5, onLoss: 'wait', waitTimeoutMs: 1500 });
});

test('elastic: min_workers above or max_workers below cluster.workers, an unknown policy or field are errors naming the field (all at once)', () => {
  assert.throws(() => compileJob(spec({ cluster: { workers: 3 }, elastic: { min_workers: 4, max_workers: 2 } }), '/j/job.yaml'), (err: Error) => {
    assert.ok(err instanceof JobSpecError);
    assert.match(err.message, /2 problems/);
    assert.match(err.message, /elastic\.min_workers.*4 is more than cluster\.workers 3/);
    assert.match(err.message, /elastic\.max_workers.*2 is less than cluster\.workers 3/);
    return true;
  });
  assert.throws(() => compileJob(spec({ elastic: { on_loss: 'retry' } }), '/j/job.yaml'), /elastic\.on_loss/);
  assert.throws(() => compileJob(spec({ elastic: { min_worker: 1 } }), '/j/job.yaml'), /elastic/);
});
