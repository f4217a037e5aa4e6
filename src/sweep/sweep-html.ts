/**
 * sweep.html: the leaderboard (metric, status, steps and every varied field of each trial), the
 * metric per trial as a bar chart, and every trial's curves (its metric at each evaluation, its
 * training loss) as inline SVG. No scripts, no network: it opens anywhere, as report.html does.
 * One colour per trial (golden-angle hues), the same in the table and in every chart; the best trial
 * is drawn thicker.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { formatValue, type TrialRow } from './leaderboard.ts';
import { SWEEP_NAMES } from './sweep-log.ts';
import type { CompiledSweep } from './sweep-spec.ts';
import { trialId } from './trial-job.ts';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The colour of the trial with 0-based number i. */
export const trialColor = (i: number) => `hsl(${Math.round((i * 137.508) % 360)},65%,42%)`;

type Series = { id: string; color: string; bold: boolean; points: Array<[number, number]> };

/** Lines over the step axis, one per trial (the legend is the table). */
function curvesSvg(title: string, series: readonly Series[]): string {
  const W = 720, H = 300, L = 64, R = 16, T = 28, B = 36;
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return `<p>${esc(title)}: no data yet</p>`;
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]), Math.min(...pts.map((p) => p[0])) + 1)];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const sx = (x: number) => (L + ((x - x0) / (x1 - x0)) * (W - L - R)).toFixed(1);
  const sy = (y: number) => (H - B - ((y - y0) / (y1 - y0)) * (H - T - B)).toFixed(1);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0))
    .map((y) => `<line x1="${L}" x2="${W - R}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/><text x="${L - 6}" y="${Number(sy(y)) + 4}" text-anchor="end" font-size="11">${y.toPrecision(3)}</text>`).join('');
  const lines = series.filter((s) => s.points.length).map((s) => {
    const d = s.points.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x)},${sy(y)}`).join(' ');
    return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.bold ? 3.5 : 1.4}"><title>${s.id}</title></path>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<text x="${L}" y="16" font-size="13">${esc(title)}</text>${grid}
<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#888"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#888"/>
<text x="${L}" y="${H - B + 16}" font-size="11">${x0}</text><text x="${W - R}" y="${H - B + 16}" text-anchor="end" font-size="11">${x1}</text>
<text x="${(W + L) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">step</text>${lines}</svg>`;
}

/** One horizontal bar per trial with a finite metric, in trial order. */
function metricBars(sweep: CompiledSweep, rows: readonly TrialRow[], colorOf: (id: string) => string, best?: string): string {
  const metric = sweep.metric;
  const shown = rows.filter((r) => r.metric !== undefined && Number.isFinite(r.metric)).sort((a, b) => (a.id < b.id ? -1 : 1));
  if (!shown.length) return `<p>${esc(metric)}: no finished trial yet</p>`;
  const W = 720, L = 150, R = 90, rowH = 18;
  const values = shown.map((r) => r.metric!);
  const lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1e-9);
  const bars = shown.map((r, i) => {
    const w = ((r.metric! - lo) / (hi - lo)) * (W - L - R);
    const y = 24 + i * rowH;
    const label = `${r.id}${sweep.asha ? ` (${r.steps} steps)` : ''}`;
    return `<text x="${L - 6}" y="${y + 12}" text-anchor="end" font-size="11"${r.id === best ? ' font-weight="bold"' : ''}>${label}</text>` +
      `<rect x="${L}" y="${y}" width="${Math.max(1, w).toFixed(1)}" height="${rowH - 4}" fill="${colorOf(r.id)}"/>` +
      `<text x="${L + Math.max(1, w) + 4}" y="${y + 12}" font-size="11">${formatValue(r.metric)}</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${30 + shown.length * rowH}" font-family="sans-serif">
<text x="0" y="14" font-size="13">${esc(metric)} of each trial's final evaluation</text>${bars}</svg>`;
}

export async function writeSweepHtml(sweep: CompiledSweep, board: readonly TrialRow[], best: TrialRow | undefined, status: string): Promise<void> {
  const index = new Map(sweep.configs.map((_, i) => [trialId(i), i]));
  const colorOf = (id: string) => trialColor(index.get(id) ?? 0);
  const fields = sweep.space.map((f) => f.key);
  const head = ['#', 'trial', 'status', 'steps', `${sweep.metric} (${sweep.mode})`, ...fields, 'seconds', 'note'].map((h) => `<th>${esc(h)}</th>`).join('');
  const rows = board.map((r, i) => `<tr${r.id === best?.id ? ' class="best"' : ''}><td>${i + 1}</td><td><span class="sw" style="background:${colorOf(r.id)}"></span>` +
    `<a href="${r.id}/report.html">${r.id}</a></td><td>${r.status}</td><td>${r.steps ?? '-'}</td><td>${r.metric === undefined ? '-' : formatValue(r.metric)}</td>` +
    `${fields.map((k) => `<td>${esc(formatValue(r.params[k]))}</td>`).join('')}<td>${r.seconds === undefined ? '' : r.seconds.toFixed(1)}</td><td>${esc(r.error ?? '')}</td></tr>`).join('\n');
  const series = (pick: (r: TrialRow) => Array<[number, number]> | undefined): Series[] =>
    board.map((r) => ({ id: r.id, color: colorOf(r.id), bold: r.id === best?.id, points: pick(r) ?? [] })).reverse(); // best drawn last, on top
  const strategy = sweep.asha ? `asha (rungs ${sweep.asha.rungs.join(', ')} steps, reduction factor ${sweep.asha.eta})` : sweep.strategy;
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>ringtune sweep ${esc(sweep.name)}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
tr.best{background:#efe;font-weight:bold}.sw{display:inline-block;width:10px;height:10px;margin-right:6px}</style></head>
<body><h1>ringtune sweep ${esc(sweep.name)}</h1>
<p>${esc(sweep.file)}: strategy ${esc(strategy)}, seed ${sweep.seed}, ${sweep.configs.length} configurations, metric ${esc(sweep.metric)} (${sweep.mode}). Status: ${esc(status)}.
${!best ? 'No finished trial yet.' : status === 'done' ? `Best: <b>${best.id}</b> (${esc(sweep.metric)} ${formatValue(best.metric)}); its model is <code>${SWEEP_NAMES.best}/</code>.`
    : `Best so far: <b>${best.id}</b> (${esc(sweep.metric)} ${formatValue(best.metric)}).`}</p>
<table><tr>${head}</tr>
${rows}</table>
<div>${metricBars(sweep, board, colorOf, best?.id)}</div>
<div>${curvesSvg(`eval ${sweep.metric}`, series((r) => r.curve?.metric))}</div>
<div>${curvesSvg('train loss', series((r) => r.curve?.train_loss))}</div>
</body></html>\n`;
  await writeFileAtomic(join(sweep.outputDir, SWEEP_NAMES.html), html);
}
