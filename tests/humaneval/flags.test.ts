/** The flags of `ringtune samples`: models and adapters, criteria, scale, the prompts file. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelSpecs } from '../../src/humaneval/models-flag.ts';
import { readPrompts } from '../../src/humaneval/prompts.ts';
import { parseCriteria, parseScale } from '../../src/humaneval/sheet-format.ts';
import { tempDir } from './helpers.ts';

test('--models / --adapter: the same directory twice under two names, an adapter on one of them', () => {
  assert.deepEqual(parseModelSpecs(['base=models/m', 'tuned=models/m', 'runs/x/final'], ['tuned=runs/lora/final']), [
    { name: 'base', model: 'models/m', adapter: null },
    { name: 'tuned', model: 'models/m', adapter: 'runs/lora/final' },
    { name: 'runs/x/final', model: 'runs/x/final', adapter: null },
  ]);
  assert.throws(() => parseModelSpecs(['models/m', 'models/m']), /--models: two models are called "models\/m"; name them, e.g. --models base=models\/m tuned=models\/m --adapter tuned=ADAPTER_DIR/);
  assert.throws(() => parseModelSpecs(['a=m'], ['b=x']), /--adapter b=x: no model called "b" in --models \(a\)/);
  assert.throws(() => parseModelSpecs(['a=m'], ['x']), /--adapter x: expected NAME=DIR/);
  assert.throws(() => parseModelSpecs(['a=m'], ['a=x', 'a=y']), /model "a" has an adapter already \(x\)/);
  assert.throws(() => parseModelSpecs([]), /at least one model/);
});

test('--criteria and --scale', () => {
  assert.deepEqual(parseCriteria(' fluency, coherence ,factual_accuracy'), ['fluency', 'coherence', 'factual_accuracy']);
  assert.throws(() => parseCriteria('fluency,fluency'), /"fluency" is listed twice/);
  assert.throws(() => parseCriteria('rater'), /"rater" is a column every sheet has already/);
  assert.throws(() => parseCriteria('Fluency'), /"Fluency" is not a criterion name/);
  assert.throws(() => parseCriteria(','), /at least one criterion/);
  assert.deepEqual(parseScale('1-7'), { min: 1, max: 7 });
  assert.deepEqual(parseScale('0 - 4'), { min: 0, max: 4 });
  for (const bad of ['5-1', '1-1', '1-20', '1.5-5', 'five']) assert.throws(() => parseScale(bad), /--scale: expected MIN-MAX/, bad);
});

test('--prompts: JSONL (prompt or text, optional id) or plain lines; errors name FILE:LINE', async (t) => {
  const dir = await tempDir(t);
  const jsonl = join(dir, 'p.jsonl');
  await writeFile(jsonl, '{"prompt": "a", "id": "x"}\n\n{"text": "b"}\n');
  assert.deepEqual(await readPrompts(jsonl), [{ id: 'x', text: 'a', where: `${jsonl}:1` }, { id: 3, text: 'b', where: `${jsonl}:3` }]);
  const txt = join(dir, 'p.txt');
  await writeFile(txt, '\uFEFFDogger, Fisher. Wind\r\n{not json either\r\n');
  assert.deepEqual((await readPrompts(txt)).map((p) => p.text), ['Dogger, Fisher. Wind', '{not json either']);
  await writeFile(jsonl, '{"prompt": "a"}\n{"completion": "b"}\n');
  await assert.rejects(readPrompts(jsonl), new RegExp(`--prompts ${jsonl}:2: needs a non-empty string "prompt"`));
  await writeFile(jsonl, '{"prompt": "a"}\n{oops\n');
  await assert.rejects(readPrompts(jsonl), new RegExp(`--prompts ${jsonl}:2: not a JSON object`));
  await writeFile(txt, '\n\n');
  await assert.rejects(readPrompts(txt), /has no prompts/);
});
