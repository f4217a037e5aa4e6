/** Non-finite numbers survive a run record's JSON as "NaN" / "Infinity" / "-Infinity", never null. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRecord, reviveNumber, stringifyRecord } from '../../src/run/record-json.ts';

test('NaN and +-Infinity are written as strings and read back as numbers; finite numbers are plain JSON', () => {
  const line = { type: 'eval', step: 3, loss: NaN, perplexity: Infinity, delta: -Infinity, tokens: 12, lr: 1.5e-4 };
  const text = stringifyRecord(line);
  assert.equal(text, '{"type":"eval","step":3,"loss":"NaN","perplexity":"Infinity","delta":"-Infinity","tokens":12,"lr":0.00015}');
  assert.ok(!text.includes('null'));
  assert.deepEqual(parseRecord(text, ['type']), line); // deepEqual treats NaN as equal to NaN
  // What JSON.stringify alone does, and why this file exists: the loss would read back as null.
  assert.equal(JSON.parse(JSON.stringify(line)).loss, null);
});

test('nested values (eval_report.json) and keys named as strings stay strings', () => {
  const report = { job: 'NaN', final_eval: { loss: NaN, accuracy: 0.5 } };
  const text = stringifyRecord(report, 2);
  assert.match(text, /"loss": "NaN"/);
  assert.deepEqual(parseRecord(text, ['job']), report);
  assert.ok(Number.isNaN((parseRecord(text) as { job: number }).job), 'without the key listed, the string is revived');
  assert.equal(reviveNumber('Infinity'), Infinity);
  assert.equal(reviveNumber('inf'), 'inf');
  assert.equal(reviveNumber(null), null);
});
