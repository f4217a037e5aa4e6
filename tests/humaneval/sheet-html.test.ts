/**
 * sheet.html: its script (vanilla JS inside the page) writes the same CSV bytes as csv-write.ts, a
 * CSV it saves imports, the embedded data cannot break out of its <script>, and nothing in the page
 * reaches the network.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvText } from '../../src/humaneval/csv-write.ts';
import { FORM_CSV_JS, formData, sheetHtml, type FormData, type FormState } from '../../src/humaneval/sheet-html.ts';
import { parseSheet, sheetCsv } from '../../src/humaneval/sheet.ts';
import { makeKey } from './helpers.ts';

/** The page's pure functions, run as the browser would run them. */
const page = new Function(`${FORM_CSV_JS}; return { csvText, sheetRows };`)() as {
  csvText: (rows: string[][], guard: boolean[]) => string;
  sheetRows: (data: FormData, state: FormState) => string[][];
};

test("the page's CSV writer writes csv-write.ts's bytes", () => {
  const rows = [['a', 'b, c', 'say "hi"', 'x\ny', 'cr\r\nlf', ' lead', 'trail ', '', '=SUM(1)', '-dash', 'ünï ✓']];
  for (const guard of [rows[0].map(() => false), rows[0].map(() => true), rows[0].map((_, i) => i % 2 === 0)]) {
    assert.equal(page.csvText(rows, guard), csvText(rows, guard));
  }
});

test('the form with no answers saves sheet.csv byte for byte; with answers, a sheet import reads', () => {
  const key = makeKey();
  const data = formData(key);
  assert.equal(page.csvText(page.sheetRows(data, { rater: '', answers: {} }), data.guard), sheetCsv(key));

  const [a, b, c] = key.samples;
  const state: FormState = {
    rater: ' Ann Lee ',
    answers: {
      [a.id]: { scores: { fluency: 5, relevance: 4 }, comment: 'fine, "really"' },
      [b.id]: { scores: {}, comment: 'only a note' },
      [c.id]: { scores: { diversity: 1 }, comment: '' },
    },
  };
  const csv = page.csvText(page.sheetRows(data, state), data.guard);
  assert.deepEqual(parseSheet(csv, 'ann.csv', key).map((r) => [r.id, r.rater, r.scores, r.comment]), [
    [a.id, 'Ann Lee', { fluency: 5, relevance: 4 }, 'fine, "really"'],
    [c.id, 'Ann Lee', { diversity: 1 }, ''],
  ]);
});

test('the page: data embedded safely, script compiles, no network', () => {
  const base = makeKey();
  // A completion that tries to close the script element and run its own.
  const nasty = '</script><script>alert(1)</script> \u2028 <!-- ';
  const key = { ...base, samples: base.samples.map((s, i) => (i === 0 ? { ...s, completion: nasty } : s)) };
  const html = sheetHtml(key);
  const json = /<script type="application\/json" id="sheet-data">([^<]*)<\/script>/.exec(html);
  assert.ok(json, 'the data element holds no "<"');
  assert.deepEqual(JSON.parse(json[1]), formData(key));
  assert.equal(html.split('<script').length - 1, 2, 'two script elements: the data and the code');
  const code = /<script>([\s\S]*)<\/script>/.exec(html)![1];
  assert.doesNotThrow(() => new Function(code), 'the page script is valid JavaScript');
  assert.doesNotMatch(html, /https?:|\/\/[a-z]|src=|<link|fetch\(|XMLHttpRequest|import\(/i, 'nothing loads from anywhere');
  for (const c of key.criteria) assert.ok(html.includes(c));
});
