// cluster.codec: the gradient all-reduce's wire codec (src/collective/codecs.ts): fp32 (default), bf16, fp16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJob, JobSpecError } from '../../src/config/compile.ts';
import { codecs } from '../../src/collective/codecs.ts';

const spec = (cluster: Record<string, unknown>) => ({ model: 'm', data: { train: 't.jsonl', format: 'text' }, training: { max_steps: 1 }, cluster });

test('cluster.codec: fp32 by default; bf16 and fp16 accepted, each a registered wire codec', () => {
  assert.equal(compileJob(spec({}), '/j/job.yaml').cluster.codec, 'fp32');
  for (const name of ['fp32', 'bf16', 'fp16'] as const) {
    const codec = compileJob(spec({ codec: name }), '/j/job.yaml').cluster.codec;
    assert.equal(codec, name);
    assert.equal(codecs[codec].name, name);
  }
});

test('cluster.codec: an unknown codec is an error naming the field and the choices', () => {
  assert.throws(() => compileJob(spec({ codec: 'fp8' }), '/j/job.yaml'), (err: Error) => {
    assert.ok(err instanceof JobSpecError);
    assert.match(err.message, /cluster\.codec: .*fp32.*bf16.*fp16/);
    return true;
  });
});
