/**
 * metrics.jsonl: non-finite numbers written explicitly; a resumed history keeps the lines up to its
 * checkpoint, drops the rest, and takes the train steps it lacks from the lines the checkpoint carries
 * (a coordinator that died while its workers trained on and checkpointed).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { encodeHistory, readHistoryFile, RunHistory, type HistoryLine } from '../../src/run/history.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-history-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const train = (step: number, extra: Record<string, number> = {}): HistoryLine => ({ type: 'train', step, loss: 10 - step / 10, grad_norm: 1, count: 8, ...extra });
const evalAt = (step: number, loss: number): HistoryLine => ({ type: 'eval', step, loss, perplexity: Math.exp(loss), tokens: 40 });

test('a NaN loss is written as "NaN" (not null) and read back as NaN', async (t) => {
  const dir = await tempDir(t);
  const h = await RunHistory.open(dir, 0);
  await h.append(train(1));
  await h.append({ type: 'train', step: 2, loss: NaN, grad_norm: Infinity, count: 8 });
  await h.append(evalAt(2, NaN));
  const text = await readFile(h.file, 'utf8');
  assert.ok(!text.includes('null'), text);
  assert.match(text, /"loss":"NaN","grad_norm":"Infinity"/);
  const back = await readHistoryFile(h.file);
  assert.equal(back.length, 3);
  assert.ok(Number.isNaN(back[1].loss) && back[1].grad_norm === Infinity);
  assert.ok(Number.isNaN(back[2].loss) && Number.isNaN(back[2].perplexity));
  assert.equal(back[2].type, 'eval');
});

test('resume keeps lines up to the checkpoint and drops later ones (they run again)', async (t) => {
  const dir = await tempDir(t);
  const lines = [evalAt(0, 3), ...[1, 2, 3, 4].map((s) => train(s)), evalAt(4, 2.5), train(5), train(6)];
  await writeFile(join(dir, 'metrics.jsonl'), encodeHistory(lines));
  const h = await RunHistory.open(dir, 4);
  assert.deepEqual(h.lines, lines.slice(0, 6));
  assert.deepEqual(await readHistoryFile(h.file), lines.slice(0, 6));
  await h.append(train(5, { tokens_per_s: 7 }));
  assert.deepEqual((await readHistoryFile(h.file)).map((l) => [l.type, l.step]), [['eval', 0], ...[1, 2, 3, 4].map((s) => ['train', s]), ['eval', 4], ['train', 5]]);
});

test('train steps up to the checkpoint that metrics.jsonl lacks come from the checkpoint, in order', async (t) => {
  const dir = await tempDir(t);
  // The coordinator recorded steps 1-3 and the eval at 2, then died; rank 0 trained on and wrote the
  // checkpoint of step 8, carrying its own (global) numbers of steps 1-8.
  const recorded = [evalAt(0, 3), train(1, { tokens_per_s: 100 }), train(2, { tokens_per_s: 100 }), evalAt(2, 2.9), train(3, { tokens_per_s: 100 })];
  await writeFile(join(dir, 'metrics.jsonl'), encodeHistory(recorded));
  const carried = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => train(s));
  const h = await RunHistory.open(dir, 8, carried);
  const expected = [...recorded, ...[4, 5, 6, 7, 8].map((s) => train(s))];
  assert.deepEqual(h.lines, expected, 'recorded lines win; 4-8 filled; 9 is beyond the checkpoint');
  assert.deepEqual(await readHistoryFile(h.file), expected);
  // An eval line in between is placed after its step's train line.
  await writeFile(join(dir, 'metrics.jsonl'), encodeHistory([train(1), evalAt(3, 2)]));
  const h2 = await RunHistory.open(dir, 4, carried);
  assert.deepEqual(h2.lines.map((l) => `${l.type}${l.step}`), ['train1', 'train2', 'train3', 'eval3', 'train4']);
});

test('a last line cut short by a kill is dropped; a malformed line elsewhere names file:line', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'metrics.jsonl');
  await writeFile(file, encodeHistory([train(1), train(2)]) + '{"type":"train","st');
  assert.deepEqual((await RunHistory.open(dir, 2)).lines, [train(1), train(2)]);
  await writeFile(file, encodeHistory([train(1)]) + 'garbage\n' + encodeHistory([train(2)]));
  await assert.rejects(RunHistory.open(dir, 2), (err: Error) => err.message.startsWith(`${file}:2: not a history line`));
});
