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
    [b.id, 'Ann Lee', {}, 'only a note'],
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

/** Just enough DOM for the page's script: elements with attributes, children, listeners, values. */
class FakeEl {
  attrs: Record<string, string> = {};
  children: Array<FakeEl | { text: string }> = [];
  listeners: Record<string, Array<(ev: { target: FakeEl }) => void>> = {};
  textContent = '';
  value = '';
  checked = false;
  title = '';
  constructor(readonly tag: string) {}
  setAttribute(k: string, v: string) { this.attrs[k] = v; if (k === 'value') this.value = v; }
  appendChild(c: FakeEl | { text: string }) { this.children.push(c); return c; }
  addEventListener(type: string, fn: (ev: { target: FakeEl }) => void) { (this.listeners[type] ??= []).push(fn); }
  fire(type: string) { for (const fn of this.listeners[type] ?? []) fn({ target: this }); }
  click() { this.fire('click'); }
  remove() {}
  focus() {}
  all(): FakeEl[] { return this.children.flatMap((c) => (c instanceof FakeEl ? [c, ...c.all()] : [])); }
  querySelectorAll(tag: string) { return this.all().filter((e) => e.tag === tag); }
}

/** Runs the page's script on a fake DOM; returns its elements and what Save CSV downloaded. */
function openPage(html: string, storage: Map<string, string>) {
  const data = new FakeEl('script');
  data.textContent = /id="sheet-data">([^<]*)</.exec(html)![1];
  const byId: Record<string, FakeEl> = { 'sheet-data': data, progress: new FakeEl('span'), items: new FakeEl('div'), rater: new FakeEl('input'), save: new FakeEl('button') };
  const body = new FakeEl('body');
  const saved: Array<{ name: string; blob: Blob }> = [];
  const blobs = new Map<string, Blob>();
  const document = {
    getElementById: (id: string) => byId[id], createElement: (tag: string) => new FakeEl(tag), createTextNode: (text: string) => ({ text }),
    body: { appendChild: (a: FakeEl) => { saved.push({ name: a.attrs.download, blob: blobs.get(a.attrs.href)! }); body.appendChild(a); } },
  };
  const localStorage = { getItem: (k: string) => storage.get(k) ?? null, setItem: (k: string, v: string) => void storage.set(k, v) };
  const URL = { createObjectURL: (b: Blob) => { const u = `blob:${blobs.size}`; blobs.set(u, b); return u; } };
  const alerts: string[] = [];
  const code = /<script>([\s\S]*)<\/script>/.exec(html)![1];
  new Function('document', 'localStorage', 'URL', 'alert', 'Blob', code)(document, localStorage, URL, (m: string) => alerts.push(m), Blob);
  const radio = (id: string, criterion: string, v: number) => byId.items.all().find((e) => e.tag === 'input' && e.attrs.name === `${id}/${criterion}` && e.attrs.value === String(v))!;
  return { byId, saved, alerts, radio };
}

test('the page itself, on a fake DOM: score, comment, name, Save CSV -> a sheet import reads; answers survive a reload', async () => {
  const key = makeKey({ prompts: 2 });
  const html = sheetHtml(key);
  const storage = new Map<string, string>();
  const p = openPage(html, storage);
  const [a, b] = key.samples;
  assert.equal(p.byId.progress.textContent, '0 of 4 samples fully rated');

  p.byId.save.click();
  assert.deepEqual([p.alerts.length, p.saved.length], [1, 0], 'no name, no file');

  for (const [c, v] of [['fluency', 4], ['relevance', 2], ['diversity', 5]] as const) {
    const r = p.radio(a.id, c, v);
    r.checked = true;
    r.fire('change');
  }
  p.radio(b.id, 'fluency', 1).fire('change');
  const comment = p.byId.items.querySelectorAll('textarea')[0];
  comment.value = 'line one\nline "two"';
  comment.fire('input');
  p.byId.rater.value = 'Bea';
  p.byId.rater.fire('input');
  assert.equal(p.byId.progress.textContent, '1 of 4 samples fully rated');

  p.byId.save.click();
  assert.equal(p.saved.length, 1);
  assert.equal(p.saved[0].name, `ratings-${key.tag}-Bea.csv`);
  const csv = await p.saved[0].blob.text();
  assert.deepEqual(parseSheet(csv, p.saved[0].name, key).map((r) => [r.id, r.rater, r.scores, r.comment]), [
    [a.id, 'Bea', { fluency: 4, relevance: 2, diversity: 5 }, 'line one\nline "two"'],
    [b.id, 'Bea', { fluency: 1 }, ''],
  ]);

  // Reopened with the same storage: the answers and the name are back, checked in the form.
  const again = openPage(html, storage);
  assert.equal(again.byId.rater.value, 'Bea');
  assert.ok(again.radio(a.id, 'relevance', 2).checked);
  assert.ok(!again.radio(a.id, 'relevance', 3).checked);
  assert.equal(again.byId.progress.textContent, '1 of 4 samples fully rated');
});
