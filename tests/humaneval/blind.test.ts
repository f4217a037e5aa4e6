/**
 * Blinding: the key maps every id back to the model and prompt that produced it (through a JSON
 * round trip), the sheets raters get name no model, and the order is a function of the seed.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readKey } from '../../src/humaneval/key.ts';
import { sheetHtml } from '../../src/humaneval/sheet-html.ts';
import { sheetCsv } from '../../src/humaneval/sheet.ts';
import { makeKey, MODELS, tempDir, textOf } from './helpers.ts';

test('key round trip: every id un-blinds to the model and prompt whose completion it shows', async (t) => {
  const dir = await tempDir(t);
  const key = makeKey();
  await writeFile(join(dir, 'key.json'), JSON.stringify(key));
  const back = await readKey(join(dir, 'key.json'));
  assert.deepEqual(back, key);
  assert.equal(back.samples.length, 12);
  for (const s of back.samples) assert.equal(s.completion, textOf(s.model, s.prompt), s.id);
  assert.equal(new Set(back.samples.map((s) => s.id)).size, 12, 'ids unique');
  assert.ok(back.samples.every((s) => s.id.startsWith(`${key.tag}-`)));
  // every (model, prompt) pair exactly once
  assert.deepEqual(new Set(back.samples.map((s) => `${s.model}/${s.prompt}`)).size, 12);
});

test('the sheets name no model: not its name, directory or adapter', () => {
  const key = makeKey();
  for (const [what, text] of [['sheet.csv', sheetCsv(key)], ['sheet.html', sheetHtml(key)]]) {
    for (const m of MODELS) {
      for (const secret of [m.name, m.model, m.adapter ?? m.name, 'hidden']) assert.ok(!text.includes(secret), `${what} leaks ${secret}`);
    }
    for (const s of key.samples) assert.ok(text.includes(s.id), `${what} shows ${s.id}`);
  }
});

test('the order is deterministic given the seed; prompts stay together, models take turns first', () => {
  const a = makeKey({ seed: 5, prompts: 20 });
  assert.deepEqual(makeKey({ seed: 5, prompts: 20 }), a, 'same seed, same key');
  assert.equal(sheetCsv(makeKey({ seed: 5, prompts: 20 })), sheetCsv(a), 'same seed, same sheet bytes');
  const b = makeKey({ seed: 6, prompts: 20 });
  assert.notDeepEqual(b.samples.map((s) => `${s.model}/${s.prompt}`), a.samples.map((s) => `${s.model}/${s.prompt}`), 'another seed, another order');
  assert.notEqual(a.tag, b.tag, 'another order, another tag: ids of one set are unknown to the other');

  // Each prompt's two completions are adjacent; prompt order is shuffled; who comes first varies.
  const pairs = [...Array(20).keys()].map((i) => a.samples.slice(2 * i, 2 * i + 2));
  assert.ok(pairs.every(([x, y]) => x.prompt === y.prompt && x.model !== y.model));
  assert.notDeepEqual(pairs.map(([x]) => x.prompt), [...Array(20).keys()], 'prompts shuffled');
  const firstIsBase = pairs.filter(([x]) => x.model === 'secret-base').length;
  assert.ok(firstIsBase > 3 && firstIsBase < 17, `base first in ${firstIsBase} of 20 prompts`);
});

test('a key that is not one names the field', async (t) => {
  const dir = await tempDir(t);
  const key = makeKey() as unknown as Record<string, unknown>;
  const bad = { ...key, samples: (key.samples as Array<Record<string, unknown>>).map((s, i) => (i === 2 ? { ...s, model: 'nobody' } : s)) };
  await writeFile(join(dir, 'key.json'), JSON.stringify(bad));
  await assert.rejects(readKey(join(dir, 'key.json')), /--key .*key\.json: not a key\.json of `ringtune samples`:\n  samples\.2\.model: "nobody" is not in models/);
  await assert.rejects(readKey(join(dir, 'nope.json')), /--key .*nope\.json: cannot read it \(ENOENT\)/);
});
