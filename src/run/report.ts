/**
 * Run outputs a person reads: eval_report.json and report.html with the loss and eval curves drawn
 * as inline SVG (no scripts, no network: the file opens anywhere). A non-finite number (a diverged
 * loss) is written as "NaN" / "Infinity" (record-json.ts), never as null; the charts leave it out.
 * A classifier's `classification` block (eval/classification-report.ts) is drawn as tables: the
 * confusion matrix with counts and labels on both axes, and P/R/F1 per class and averaged.
 * `ringtune ratings import --report` later adds a "Human ratings" section beside the automatic
 * metrics (setHumanRatingsSection): between two comment markers, so importing again replaces it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import type { ClassificationReport } from '../eval/classification-report.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { HistoryLine } from './history.ts';
import { OUTPUT_NAMES } from './outputs.ts';
import { stringifyRecord } from './record-json.ts';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A line chart of one or more series over the step axis. */
export function svgChart(title: string, series: Array<{ name: string; color: string; points: Array<[number, number]> }>): string {
  const W = 640, H = 300, L = 60, R = 20, T = 30, B = 40;
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (pts.length === 0) return `<svg width="${W}" height="60"><text x="10" y="30">${esc(title)}: no data</text></svg>`;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  const grid = ticks.map((y) => `<line x1="${L}" x2="${W - R}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/><text x="${L - 6}" y="${sy(y) + 4}" text-anchor="end" font-size="11">${y.toPrecision(3)}</text>`).join('');
  const lines = series.map((s) => {
    const finite = s.points.filter(([, y]) => Number.isFinite(y));
    const d = finite.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    const dots = finite.length <= 60 ? finite.map(([x, y]) => `<circle cx="${sx(x)}" cy="${sy(y)}" r="2.5" fill="${s.color}"/>`).join('') : '';
    return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>${dots}`;
  }).join('');
  const legend = series.map((s, i) => `<rect x="${L + i * 150}" y="8" width="12" height="12" fill="${s.color}"/><text x="${L + 16 + i * 150}" y="18" font-size="12">${esc(s.name)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">step</text>${grid}
<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#888"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#888"/>
<text x="${L}" y="${H - B + 16}" font-size="11">${x0}</text><text x="${W - R}" y="${H - B + 16}" text-anchor="end" font-size="11">${x1}</text>
${lines}${legend}<title>${esc(title)}</title></svg>`;
}

export async function writeReports(outputDir: string, summary: Record<string, unknown>, history: HistoryLine[]): Promise<void> {
  await writeFileAtomic(join(outputDir, OUTPUT_NAMES.evalReport), stringifyRecord(summary, 2) + '\n');
  const train = history.filter((h) => h.type === 'train');
  const evals = history.filter((h) => h.type === 'eval');
  const metricNames = [...new Set(evals.flatMap((e) => Object.keys(e)).filter((k) => !['type', 'step', 'loss', 'tokens', 'examples'].includes(k)))];
  const charts = [
    svgChart('loss', [
      { name: 'train loss', color: '#1f77b4', points: train.map((h) => [h.step, Number(h.loss)]) },
      { name: 'eval loss', color: '#d62728', points: evals.map((h) => [h.step, Number(h.loss)]) },
    ]),
    ...metricNames.map((m) => svgChart(m, [{ name: `eval ${m}`, color: '#2ca02c', points: evals.map((h) => [h.step, Number(h[m])]) }])),
    svgChart('learning rate', [{ name: 'lr', color: '#9467bd', points: train.map((h) => [h.step, Number(h.lr)]) }]),
  ];
  const rows = Object.entries(summary)
    .filter(([k]) => k !== 'classification')
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td><pre>${esc(typeof v === 'object' ? stringifyRecord(v, 1) : String(v))}</pre></td></tr>`)
    .join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>ringtune report</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto}th{text-align:left;vertical-align:top;padding-right:1em}pre{margin:0}
table.cm{border-collapse:collapse;margin:1em 0}table.cm td,table.cm th{border:1px solid #ccc;padding:2px 8px;text-align:right}table.cm td.diag{background:#dfd}</style></head>
<body><h1>ringtune run report</h1><table>${rows}</table>${classificationHtml(summary.classification as ClassificationReport | undefined)}${HUMAN_RATINGS.begin}${HUMAN_RATINGS.end}\n${charts.map((c) => `<div>${c}</div>`).join('\n')}</body></html>\n`;
  await writeFileAtomic(join(outputDir, OUTPUT_NAMES.htmlReport), html);
}

const num = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/**
 * The final evaluation's confusion matrix (rows = true label, columns = predicted label, as in
 * eval_report.json) and P/R/F1 per class and averaged, as HTML tables; '' when not a classifier.
 */
export function classificationHtml(c: ClassificationReport | undefined): string {
  if (!c) return '';
  const head = c.labels.map((l) => `<th>${esc(l)}</th>`).join('');
  const matrix = c.confusion_matrix.map((row, i) =>
    `<tr><th>${esc(c.labels[i])}</th>${row.map((n, j) => `<td${i === j ? ' class="diag"' : ''}>${n}</td>`).join('')}<td>${c.per_class[i].support}</td></tr>`).join('');
  const predicted = c.per_class.map((p) => `<td>${p.predicted}</td>`).join('');
  const prf = (name: string, x: { precision: number; recall: number; f1: number }, support: number | string) =>
    `<tr><th>${esc(name)}</th><td>${num(x.precision)}</td><td>${num(x.recall)}</td><td>${num(x.f1)}</td><td>${support}</td></tr>`;
  return `<h2>classification (final evaluation, ${c.count} examples, accuracy ${num(c.accuracy)})</h2>
<table class="cm"><caption>confusion matrix: rows = true label, columns = predicted label</caption>
<tr><th>true &darr; predicted &rarr;</th>${head}<th>support</th></tr>${matrix}<tr><th>predicted</th>${predicted}<td>${c.count}</td></tr></table>
<table class="cm"><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
${c.per_class.map((p) => prf(p.label, p, p.support)).join('')}${prf('macro', c.macro, '')}${prf('micro', c.micro, '')}${prf('weighted', c.weighted, c.count)}</table>`;
}

/** Where the human-ratings section sits in report.html: after the evaluation tables, before the curves. */
const HUMAN_RATINGS = { begin: '<!-- ringtune:human-ratings -->', end: '<!-- /ringtune:human-ratings -->' } as const;

/**
 * Puts `sectionHtml` (src/humaneval/ratings-report.ts) into the report.html of run `outputDir`,
 * replacing an earlier one; a report written before the markers existed gets it at the end. The
 * section is lost if the run later rewrites its report (a resumed run): import the ratings again.
 * Returns the report's path.
 */
export async function setHumanRatingsSection(outputDir: string, sectionHtml: string): Promise<string> {
  const file = join(outputDir, OUTPUT_NAMES.htmlReport);
  const html = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`--report ${outputDir}: cannot read ${file} (${err.code ?? err.message}); give the output directory of a finished run`);
  });
  const block = `${HUMAN_RATINGS.begin}<section id="human-ratings">\n${sectionHtml}\n</section>${HUMAN_RATINGS.end}`;
  const [b, e] = [html.indexOf(HUMAN_RATINGS.begin), html.indexOf(HUMAN_RATINGS.end)];
  let out: string;
  if (b >= 0 && e > b) {
    out = html.slice(0, b) + block + html.slice(e + HUMAN_RATINGS.end.length);
  } else {
    const end = html.lastIndexOf('</body>');
    if (end < 0) throw new InputError(`--report ${outputDir}: ${file} is not a ringtune report (no </body>)`);
    out = `${html.slice(0, end)}${block}\n${html.slice(end)}`;
  }
  await writeFileAtomic(file, out);
  return file;
}
