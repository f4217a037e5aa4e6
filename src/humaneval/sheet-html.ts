/**
 * sheet.html: the rating sheet as a form that opens from a file in any browser, with no network and
 * no library: the samples are embedded as JSON, the script is vanilla JS. A rater types a name, picks
 * 1..5 per criterion (or leaves it empty), may comment, and saves a CSV in sheet.csv's format (same
 * columns, same quoting: FORM_CSV_JS mirrors csv-write.ts and a test holds the bytes equal), ready
 * for `ringtune ratings import`. Answers are kept in the browser's localStorage under the sample
 * set's tag, so closing the tab loses nothing (where the browser allows storage for a file:// page).
 */
import type { SampleKey } from './key.ts';
import { CRITERION_HELP, FIXED_COLUMNS, sheetColumns } from './sheet-format.ts';

/** What the page embeds: ids, prompts and completions only, never a model's name or path. */
export interface FormData {
  tag: string;
  criteria: string[];
  help: Record<string, string>;
  scale: { min: number; max: number };
  columns: string[];
  /** Columns holding free text (formula-guarded like csv-write.ts). */
  guard: boolean[];
  items: Array<{ id: string; prompt: string; completion: string }>;
}

/** The answers the page keeps: id -> scores and comment. */
export interface FormState {
  rater: string;
  answers: Record<string, { scores: Record<string, number>; comment: string }>;
}

export function formData(key: SampleKey): FormData {
  const columns = sheetColumns(key.criteria);
  return {
    tag: key.tag, criteria: [...key.criteria], scale: { ...key.scale }, columns,
    help: Object.fromEntries(key.criteria.filter((c) => CRITERION_HELP[c]).map((c) => [c, CRITERION_HELP[c]])),
    guard: columns.map((c) => c === FIXED_COLUMNS.prompt || c === FIXED_COLUMNS.completion || c === FIXED_COLUMNS.comment),
    items: key.samples.map((s) => ({ id: s.id, prompt: key.prompts[s.prompt].text, completion: s.completion })),
  };
}

/**
 * The page's pure functions (no DOM): csvField / csvText as csv-write.ts; sheetRows(data, state) ->
 * the CSV's rows, the rater's name on every row that has a score or a comment.
 */
export const FORM_CSV_JS = String.raw`
function csvField(value, guard) {
  var v = guard && /^[=+\-@\t\r]/.test(value) ? "'" + value : value;
  return /[",\r\n]|^ | $/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function csvText(rows, guard) {
  return rows.map(function (r) {
    return r.map(function (f, i) { return csvField(f, !!guard[i]); }).join(',') + '\r\n';
  }).join('');
}
function sheetRows(data, state) {
  var rows = [data.columns];
  data.items.forEach(function (it) {
    var a = state.answers[it.id] || { scores: {}, comment: '' };
    var scores = data.criteria.map(function (c) { return a.scores[c] === undefined ? '' : String(a.scores[c]); });
    var used = scores.some(function (s) { return s !== ''; }) || a.comment.trim() !== '';
    rows.push([it.id, it.prompt, it.completion].concat(scores, [used ? state.rater.trim() : '', a.comment]));
  });
  return rows;
}
`;

/** The page's DOM code: renders the items, keeps the answers, saves the CSV. */
const FORM_UI_JS = String.raw`
var DATA = JSON.parse(document.getElementById('sheet-data').textContent);
var STORE = 'ringtune-sheet-' + DATA.tag;
var state = { rater: '', answers: {} };
try { var saved = JSON.parse(localStorage.getItem(STORE) || 'null'); if (saved && saved.answers) state = saved; } catch (e) {}
function persist() { try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) {} progress(); }
function answer(id) { return state.answers[id] || (state.answers[id] = { scores: {}, comment: '' }); }
function el(tag, attrs, text) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  if (text !== undefined) e.textContent = text;
  return e;
}
function progress() {
  var done = DATA.items.filter(function (it) {
    var a = state.answers[it.id];
    return a && DATA.criteria.every(function (c) { return a.scores[c] !== undefined; });
  }).length;
  document.getElementById('progress').textContent = done + ' of ' + DATA.items.length + ' samples fully rated';
}
var list = document.getElementById('items');
DATA.items.forEach(function (it, n) {
  var sec = el('section', { 'class': 'item', id: 'item-' + it.id });
  sec.appendChild(el('h3', {}, (n + 1) + '. sample ' + it.id));
  sec.appendChild(el('div', { 'class': 'label' }, 'prompt'));
  sec.appendChild(el('pre', { 'class': 'prompt' }, it.prompt));
  sec.appendChild(el('div', { 'class': 'label' }, 'completion'));
  sec.appendChild(el('pre', { 'class': 'completion' }, it.completion === '' ? '(empty)' : it.completion));
  DATA.criteria.forEach(function (c) {
    var row = el('div', { 'class': 'crit' });
    var name = el('span', { 'class': 'cname' }, c);
    if (DATA.help[c]) name.title = DATA.help[c];
    row.appendChild(name);
    for (var v = DATA.scale.min; v <= DATA.scale.max; v++) {
      var lab = el('label');
      var input = el('input', { type: 'radio', name: it.id + '/' + c, value: String(v) });
      if (answer(it.id).scores[c] === v) input.checked = true;
      input.addEventListener('change', function (ev) { answer(it.id).scores[c] = Number(ev.target.value); persist(); });
      lab.appendChild(input);
      lab.appendChild(document.createTextNode(' ' + v + ' '));
      row.appendChild(lab);
    }
    var clear = el('button', { type: 'button', 'class': 'clear' }, 'clear');
    clear.addEventListener('click', function () {
      delete answer(it.id).scores[c];
      row.querySelectorAll('input').forEach(function (i) { i.checked = false; });
      persist();
    });
    row.appendChild(clear);
    if (DATA.help[c]) row.appendChild(el('span', { 'class': 'help' }, DATA.help[c]));
    sec.appendChild(row);
  });
  var comment = el('textarea', { rows: '2', placeholder: 'comment (optional)' });
  comment.value = answer(it.id).comment;
  comment.addEventListener('input', function () { answer(it.id).comment = comment.value; persist(); });
  sec.appendChild(comment);
  list.appendChild(sec);
});
var rater = document.getElementById('rater');
rater.value = state.rater;
rater.addEventListener('input', function () { state.rater = rater.value; persist(); });
document.getElementById('save').addEventListener('click', function () {
  if (state.rater.trim() === '') { alert('Type your name first: it goes into the rater column.'); rater.focus(); return; }
  var blob = new Blob([csvText(sheetRows(DATA, state), DATA.guard)], { type: 'text/csv;charset=utf-8' });
  var a = el('a', { href: URL.createObjectURL(blob), download: 'ratings-' + DATA.tag + '-' + state.rater.trim().replace(/[^A-Za-z0-9_.-]+/g, '_') + '.csv' });
  document.body.appendChild(a); a.click(); a.remove();
});
progress();
`;

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** JSON that cannot end the <script> element it sits in. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

export function sheetHtml(key: SampleKey): string {
  const data = formData(key);
  const { min, max } = data.scale;
  return `<!doctype html><html><head><meta charset="utf-8"><title>rating sheet ${esc(data.tag)}</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;padding:0 1em}
.item{border-top:1px solid #ccc;padding:.5em 0 1em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;margin:.2em 0 .6em}
.label{font-size:.8em;color:#666}.crit{margin:.3em 0}.cname{display:inline-block;width:8em;font-weight:bold}.help{color:#666;font-size:.85em;margin-left:1em}
textarea{width:100%}header{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:2px solid #888}button.clear{font-size:.75em}</style></head>
<body><header><h1>Rating sheet</h1>
<p>Rate each completion on a scale from ${min} (worst) to ${max} (best) for each criterion, judging the completion as a continuation or answer of its prompt; leave a criterion empty to skip it. The samples come from several models in a random order, and nothing here says which model wrote which. Your answers stay in this browser until you save them.</p>
<p><label>Your name (rater): <input id="rater" size="24"></label> <button id="save" type="button">Save CSV</button> <span id="progress"></span></p>
<p>Send the saved CSV back to whoever gave you this sheet.</p></header>
<div id="items"></div>
<script type="application/json" id="sheet-data">${scriptJson(data)}</script>
<script>${FORM_CSV_JS}${FORM_UI_JS}</script>
</body></html>
`;
}
