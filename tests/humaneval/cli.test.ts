/**
 * End to end on a tiny model, through the real command line: a LoRA run gives a base and an adapter
 * (and a report.html); `ringtune samples` compares base and base + adapter (the same directory twice,
 * told apart by --adapter); two raters fill the sheet; `ringtune ratings import --report` un-blinds
 * it into ratings.json / ratings.md and the run's report.html.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { csvText } from '../../src/humaneval/csv-write.ts';
import { readKey } from '../../src/humaneval/key.ts';
import { ratingsHtml } from '../../src/humaneval/ratings-report.ts';
import { summarize, type RatingsSummary } from '../../src/humaneval/ratings.ts';
import { readSheets } from '../../src/humaneval/sheet.ts';
import { setHumanRatingsSection } from '../../src/run/report.ts';
import { baseModel, ready, runCli, tempDir, trainLoraAdapter, writeLines } from '../train/fixtures.ts';

const run = runCli;

test('samples -> two raters -> ratings import --report, base vs base + LoRA adapter', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const base = await baseModel(dir, 'gpt2');
  const adapter = await trainLoraAdapter(dir, base);

  const prompts = ['the cat', 'the dog ran to', 'a fox'];
  await writeLines(join(dir, 'prompts.jsonl'), prompts.map((p, i) => JSON.stringify({ id: `q${i}`, prompt: p })));
  const out = join(dir, 'heval');
  const args = ['samples', '--models', `base=${base}`, `tuned=${base}`, '--adapter', `tuned=${adapter}`, '--prompts', join(dir, 'prompts.jsonl'),
    '--out', out, '--max-new-tokens', '6', '--seed', '4'];
  const s = run(args);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stdout, /6 samples \(2 models x 3 prompts, set [0-9a-f]{6}\), criteria fluency, relevance, diversity/);

  // The key: each model's completion is what `generate` gives for that prompt.
  const key = await readKey(join(out, 'key.json'));
  assert.deepEqual(key.models, [{ name: 'base', model: base, adapter: null }, { name: 'tuned', model: base, adapter }]);
  const completion = (model: string, prompt: number) => key.samples.find((x) => x.model === model && x.prompt === prompt)!.completion;
  const gen = run(['generate', '--model', base, '--adapter', adapter, '--prompt', prompts[1], '--max-tokens', '6']);
  assert.equal(gen.status, 0, gen.stderr);
  assert.equal(gen.stdout, `${prompts[1]}${completion('tuned', 1)}\n`);
  assert.notEqual(completion('tuned', 1), completion('base', 1), 'the adapter changes the completion');

  // The sheet: ids only; running again refuses to replace it.
  const sheet = await readFile(join(out, 'sheet.csv'), 'utf8');
  assert.ok(!sheet.includes('tuned') && !sheet.includes(adapter) && !sheet.includes(base));
  assert.match(await readFile(join(out, 'sheet.html'), 'utf8'), /<!doctype html>/);
  const again = run(args);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /--out .*heval holds key\.json, sheet\.csv, sheet\.html already; pass --overwrite/);

  // Two raters: both prefer the tuned model on fluency (5 vs 2), agree exactly.
  const rows = parse(sheet) as string[][];
  for (const rater of ['ann', 'bob']) {
    const filled = rows.map((r, i) => {
      if (i === 0) return r;
      const tuned = key.samples[i - 1].model === 'tuned';
      return [r[0], r[1], r[2], tuned ? '5' : '2', tuned ? '4' : '3', '', rater, ''];
    });
    await writeFile(join(dir, `${rater}.csv`), csvText(filled));
  }
  const imp = run(['ratings', 'import', join(dir, 'ann.csv'), join(dir, 'bob.csv'), '--key', join(out, 'key.json'), '--report', join(dir, 'out')]);
  assert.equal(imp.status, 0, imp.stderr);
  assert.match(imp.stdout, /\| fluency \| base \| tuned \| 0 \| 0 \| 3 \| 3 \| 0% \|/);
  const summary = JSON.parse(await readFile(join(out, 'ratings.json'), 'utf8')) as RatingsSummary;
  assert.deepEqual(summary.models.map((m) => [m.model, m.criteria.fluency.mean, m.criteria.fluency.n, m.criteria.fluency.ratings]), [['base', 2, 3, 6], ['tuned', 5, 3, 6]]);
  assert.equal(summary.agreement.find((a) => a.criterion === 'fluency')!.alpha, 1);
  assert.match(await readFile(join(out, 'ratings.md'), 'utf8'), /^# Human ratings/);

  // report.html: the section beside the automatic metrics, replaced (not repeated) by a second import.
  const report = await readFile(join(dir, 'out', 'report.html'), 'utf8');
  assert.equal(report.split('<h2>Human ratings</h2>').length, 2);
  assert.ok(report.indexOf('Human ratings') < report.indexOf('<svg'), 'before the curves');
  assert.match(report, /<th>tuned<\/th><td>5\.00 \[5\.00, 5\.00\]<\/td>/);
  // Importing again (in-process here: the splice the command makes) replaces the section, nothing else.
  await setHumanRatingsSection(join(dir, 'out'), ratingsHtml(summarize(key, await readSheets([join(dir, 'ann.csv')], key))));
  const report2 = await readFile(join(dir, 'out', 'report.html'), 'utf8');
  assert.equal(report2.split('<h2>Human ratings</h2>').length, 2);
  assert.match(report2, /6 ratings by 1 rater \(ann\) of 6 of 6 samples/);
  const section = /<!-- ringtune:human-ratings -->[\s\S]*<!-- \/ringtune:human-ratings -->/;
  assert.equal(report2.replace(section, ''), report.replace(section, ''), 'the rest of the report untouched');

  // A bad sheet: exit 1, the message names file, row and column.
  const bad = (await readFile(join(dir, 'ann.csv'), 'utf8')).replace(/,5,4,,ann,/, ',7,4,,ann,');
  await writeFile(join(dir, 'bad.csv'), bad);
  const b = run(['ratings', 'import', join(dir, 'bad.csv'), '--key', join(out, 'key.json'), '--out', join(dir, 'r2')]);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /bad\.csv row \d column "fluency": "7" is not an integer score from 1 to 5/);
});
