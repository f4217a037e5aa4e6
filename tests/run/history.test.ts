/**
 * run/history.ts: metrics.jsonl for a fresh run starts empty; a resumed run keeps exactly the lines up
 * to its checkpoint's step (those after it belong to steps that run again), rewrites the file
 * without the rest, and appends after them.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RingtuneError } from '../../src/errors.ts';
import { RunHistory, type HistoryLine } from '../../src/run/history.ts';
import { readHistory, tempDir } from './helpers.ts';

/** A history as the first run left it when it died after step 6: evals at 0, 4 and 6. */
const FIRST_RUN: HistoryLine[] = [
  { type: 'eval', step: 0, loss: 3.5 },
  ...[1, 2, 3, 4].map((step) => ({ type: 'train' as const, step, loss: 4 - step / 4 })),
  { type: 'eval', step: 4, loss: 2.9 },
  { type: 'train', step: 5, loss: 2.7 },
  { type: 'train', step: 6, loss: 2.6 },
  { type: 'eval', step: 6, loss: 2.5 },
];
const jsonl = (lines: HistoryLine[]) => lines.map((l) => JSON.stringify(l) + '\n').join('');

test('resume from step 4: lines <= 4 kept in order, the rest dropped from memory and from the file', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'metrics.jsonl');
  await writeFile(file, jsonl(FIRST_RUN));
  const h = await RunHistory.open(dir, 4);
  const kept = FIRST_RUN.slice(0, 6); // eval 0, train 1..4, eval 4
  assert.deepEqual(h.lines, kept);
  assert.equal(await readFile(file, 'utf8'), jsonl(kept)); // rewritten, not just filtered in memory
  await h.append({ type: 'train', step: 5, loss: 2.75 });
  assert.deepEqual(await readHistory(dir), [...kept, { type: 'train', step: 5, loss: 2.75 }]);
  assert.equal(h.lines.length, 7);
});

test('a fresh run (step 0) empties an old metrics.jsonl; a resume without one starts empty', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'metrics.jsonl'), jsonl(FIRST_RUN));
  const fresh = await RunHistory.open(dir, 0);
  assert.deepEqual(fresh.lines, []);
  assert.equal(await readFile(join(dir, 'metrics.jsonl'), 'utf8'), '');

  const other = join(await tempDir(t), 'nested', 'out'); // created on open
  const resumed = await RunHistory.open(other, 6);
  assert.deepEqual(resumed.lines, []);
  assert.equal(await readFile(join(other, 'metrics.jsonl'), 'utf8'), '');
});

test('resume after a crash that tore the last line of metrics.jsonl', async (t) => {
  const dir = await tempDir(t);
  const whole = jsonl(FIRST_RUN.slice(0, 5));
  await writeFile(join(dir, 'metrics.jsonl'), whole + '{"type":"train","step":5,"lo');
  // Either the torn line is dropped (it is past any checkpoint: it was being appended when the
  // process died) or the error is a RingtuneError that names the file, never a bare SyntaxError.
  let h: RunHistory | undefined;
  try {
    h = await RunHistory.open(dir, 4);
  } catch (err) {
    assert.ok(err instanceof RingtuneError, `got ${(err as Error).name}: ${(err as Error).message}`);
    assert.match((err as Error).message, /metrics\.jsonl/);
    return;
  }
  assert.deepEqual(h.lines, FIRST_RUN.slice(0, 5));
});
