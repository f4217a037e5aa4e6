/**
 * sheet.csv: the writer's quoting survives csv-parse (what import reads with) unchanged, and a bad
 * sheet is an error naming file, row (the header is row 1, as in a spreadsheet) and column, all
 * problems of a sheet at once.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { csvText } from '../../src/humaneval/csv-write.ts';
import type { SampleKey } from '../../src/humaneval/key.ts';
import { parseSheet, RatingSheetError, readSheets, sheetCsv } from '../../src/humaneval/sheet.ts';
import { makeKey, tempDir } from './helpers.ts';

const TRICKY = ['plain', 'a, b', 'say "hi"', 'two\nlines', 'crlf\r\nline', ' lead', 'trail ', '', 'ünïcødé ✓', '""', ','];

test('CSV writer: every field reads back unchanged through csv-parse', () => {
  const rows = [TRICKY, [...TRICKY].reverse()];
  assert.deepEqual(parse(csvText(rows)), rows);
  assert.equal(csvText([['a', 'b c', 'd"e']]), 'a,b c,"d""e"\r\n');
});

test('CSV writer: free text that a spreadsheet would run as a formula gets an apostrophe', () => {
  const text = ['=1+1', '+3', '-x', '@SUM(A1)', '\tt', 'fine = ok'];
  const back = parse(csvText([text], text.map(() => true)))[0] as string[];
  assert.deepEqual(back, ["'=1+1", "'+3", "'-x", "'@SUM(A1)", "'\tt", 'fine = ok']);
  assert.deepEqual(parse(csvText([text])), [text], 'unguarded columns unchanged');
});

/** The blank sheet of `key` with cells set: cells[row][column] for data rows (row 2 = first sample). */
function filled(key: SampleKey, set: Record<number, Record<string, string>>): string[][] {
  const rows = parse(sheetCsv(key)) as string[][];
  for (const [row, cells] of Object.entries(set)) {
    for (const [col, v] of Object.entries(cells)) rows[Number(row) - 1][rows[0].indexOf(col)] = v;
  }
  return rows;
}
const text = (rows: string[][]) => csvText(rows);

test('a filled sheet reads back as ratings; empty cells are not rated, rows without scores or comment skipped', () => {
  const key = makeKey();
  const rows = filled(key, {
    2: { fluency: '4', relevance: '5', diversity: '', rater: 'ann', comment: 'ok, "fine"' },
    3: { fluency: ' 1 ', relevance: '2', diversity: '3', rater: 'ann' },
    5: { comment: 'a note, no scores', rater: 'ann' },
    6: { rater: 'ann' },
  });
  const r = parseSheet(text(rows), 'ann.csv', key);
  assert.deepEqual(r, [
    { id: key.samples[0].id, rater: 'ann', scores: { fluency: 4, relevance: 5 }, comment: 'ok, "fine"', where: 'ann.csv row 2' },
    { id: key.samples[1].id, rater: 'ann', scores: { fluency: 1, relevance: 2, diversity: 3 }, comment: '', where: 'ann.csv row 3' },
    { id: key.samples[3].id, rater: 'ann', scores: {}, comment: 'a note, no scores', where: 'ann.csv row 5' },
  ]);
  // Columns in another order, header in capitals, prompt/completion/comment columns deleted: still fine.
  const lean = [['Rater', 'diversity', 'ID', 'relevance', 'fluency'], ['bob', '2', key.samples[3].id, '3', '3.0']];
  assert.deepEqual(parseSheet(text(lean), 'bob.csv', key).map((x) => [x.id, x.rater, x.scores]), [[key.samples[3].id, 'bob', { fluency: 3, relevance: 3, diversity: 2 }]]);
  // Saved by a spreadsheet in a decimal-comma locale: semicolons between fields, commas inside text.
  const semi = `id;completion;fluency;relevance;diversity;rater\r\n${key.samples[2].id};"wind, south";4;;1;cy\r\n`;
  assert.deepEqual(parseSheet(semi, 'cy.csv', key).map((x) => [x.id, x.rater, x.scores]), [[key.samples[2].id, 'cy', { fluency: 4, diversity: 1 }]]);
});

test('bad cells: every problem listed, each with file, row and column', () => {
  const key = makeKey();
  const rows = filled(key, {
    2: { fluency: '6', rater: 'ann' },
    3: { relevance: '3.5', rater: 'ann' },
    4: { diversity: 'good', rater: 'ann' },
    5: { fluency: '0', rater: 'ann' },
    6: { fluency: '3', comment: 'nice' },
    7: { id: 'zzzzzz-99', fluency: '3', rater: 'ann' },
    8: { fluency: '2', rater: 'ann' },
    9: { id: key.samples[6].id, fluency: '2', rater: 'ann' },
    10: { id: '', fluency: '2', rater: 'ann' },
  });
  const err = (() => { try { parseSheet(text(rows), 'sheets/ann.csv', key); } catch (e) { return e as Error; } })();
  assert.ok(err instanceof RatingSheetError, String(err));
  const m = err.message;
  assert.match(m, /^sheets\/ann\.csv: 8 problems in the rating sheet:/);
  assert.match(m, /sheets\/ann\.csv row 2 column "fluency": "6" is not an integer score from 1 to 5/);
  assert.match(m, /sheets\/ann\.csv row 3 column "relevance": "3\.5" is not an integer score from 1 to 5/);
  assert.match(m, /sheets\/ann\.csv row 4 column "diversity": "good" is not an integer score/);
  assert.match(m, /sheets\/ann\.csv row 5 column "fluency": "0" is not an integer score/);
  assert.match(m, /sheets\/ann\.csv row 6 column "rater": empty, but the row has scores or a comment/);
  assert.match(m, new RegExp(`sheets/ann\\.csv row 7 column "id": unknown id "zzzzzz-99"; this key's ids look like ${key.samples[0].id}`));
  assert.match(m, new RegExp(`sheets/ann\\.csv row 9 column "id": rater "ann" rated ${key.samples[6].id} already in row 8`));
  assert.match(m, /sheets\/ann\.csv row 10 column "id": empty/);
});

test('bad header: missing and unknown columns named, with row 1', () => {
  const key = makeKey();
  const rows = filled(key, {}).map((r) => r.filter((_, i) => i !== 4 && i !== 6)); // drop relevance and rater
  rows[0].push('coherence');
  rows.slice(1).forEach((r) => r.push(''));
  assert.throws(() => parseSheet(text(rows), 'x.csv', key), (e: Error) => {
    assert.match(e.message, /x\.csv row 1 column "coherence": not a column of this sample set \(columns: id, prompt, completion, fluency, relevance, diversity, rater, comment\)/);
    assert.match(e.message, /x\.csv row 1: missing columns "relevance", "rater"/);
    return true;
  });
  assert.throws(() => parseSheet('', 'empty.csv', key), /empty\.csv: empty; expected the header id,prompt,completion,fluency,relevance,diversity,rater,comment/);
  assert.throws(() => parseSheet('id,"unterminated\n', 'q.csv', key), /q\.csv: not readable as CSV/);
  const past = filled(key, { 3: { fluency: '2', rater: 'a' } });
  past[2].push('stray');
  assert.throws(() => parseSheet(text(past), 'p.csv', key), /p\.csv row 3 column 9: a value past the last column of the header/);
});

test('the same rater rating the same sample in two sheets names both places', async (t) => {
  const dir = await tempDir(t);
  const key = makeKey();
  await writeFile(join(dir, 'a.csv'), text(filled(key, { 4: { fluency: '3', rater: 'ann' } })));
  await writeFile(join(dir, 'b.csv'), text(filled(key, { 2: { fluency: '3', rater: 'bob' }, 4: { relevance: '1', rater: 'ann' } })));
  await assert.rejects(readSheets([join(dir, 'a.csv'), join(dir, 'b.csv')], key),
    new RegExp(`b\\.csv row 4 column "id": rater "ann" rated ${key.samples[2].id} already in .*a\\.csv row 4`));
  await writeFile(join(dir, 'c.csv'), text(filled(key, { 4: { relevance: '1', rater: 'cy' } })));
  assert.equal((await readSheets([join(dir, 'a.csv'), join(dir, 'c.csv')], key)).length, 2);
});
