#!/usr/bin/env node
// Renders the main panels of the Grafana dashboard (deploy/grafana/dashboards/ringtune.json) to one SVG
// from a Prometheus that scraped a real run: the picture in docs/deploy.md. No browser and no Grafana:
// each panel's own PromQL goes through Prometheus' HTTP API with the dashboard's variables and
// Grafana's interval rules filled in (as tests/deploy/prometheus-e2e.test.ts does), and the series are
// drawn as lines (time series) or as the last value (stats).
//
//   node scripts/render-dashboard.mjs --prometheus http://127.0.0.1:9090 --job NAME --out docs/images/dashboard.svg
//     [--from UNIX --to UNIX]   default: the span in which every target of the job was up
//     [--scrape SECONDS]        the scrape interval (default: the datasource's timeInterval, 5)
//     [--panels "Title,Title"]  default: MAIN_PANELS below
// docs/deploy.md ("The dashboard picture") shows how to get a run into a local Prometheus first.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const MAIN_PANELS = [
  'Step / total steps', 'Workers alive / world size', 'Evaluations and checkpoints',
  'Training loss (global and per rank)', 'Learning rate and gradient norm', 'Eval loss and perplexity',
  'Input tokens/s (padded)', 'Step time quantiles (all ranks)', 'Mean step time per rank (stragglers)',
  'Communication share of the step', 'Bus bandwidth per rank', 'Resident memory',
];
const COLORS = ['#7eb26d', '#eab839', '#6ed0e0', '#ef843c', '#e24d42', '#1f78c1', '#ba43a9', '#705da0'];

const { values: o } = parseArgs({ options: {
  prometheus: { type: 'string', default: 'http://127.0.0.1:9090' }, job: { type: 'string' }, out: { type: 'string' },
  from: { type: 'string' }, to: { type: 'string' }, scrape: { type: 'string' }, panels: { type: 'string' },
} });
if (!o.job || !o.out) {
  console.error('usage: render-dashboard.mjs --prometheus URL --job NAME --out FILE.svg [--from UNIX --to UNIX] [--scrape S] [--panels "A,B"]');
  process.exit(2);
}

async function prom(path, params) {
  const url = `${o.prometheus}${path}?${new URLSearchParams(params)}`;
  const res = await fetch(url).catch((err) => { throw new Error(`${o.prometheus}: ${err.cause?.code ?? err.message} (is Prometheus running?)`); });
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${path} ${params.query}: ${body.error}`);
  return body.data;
}

// 1. The time span: from the first moment every target of the job was up to the last (series go
//    stale once the processes exit), unless given.
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/dashboards/ringtune.json'), 'utf8'));
const datasource = readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yaml'), 'utf8');
const scrape = Number(o.scrape ?? /timeInterval:\s*"?(\d+)s/.exec(datasource)?.[1] ?? 5);
let [from, to] = [Number(o.from), Number(o.to)];
if (!o.from || !o.to) {
  const up = await prom('/api/v1/query', { query: `up{job="${o.job}"}[1d]` });
  if (up.result.length === 0) throw new Error(`Prometheus at ${o.prometheus} has no target of job "${o.job}"`);
  const times = up.result.map((r) => r.values.filter(([, v]) => v === '1').map(([t]) => t));
  from ||= Math.max(...times.map((t) => Math.min(...t)));
  to ||= Math.min(...times.map((t) => Math.max(...t)));
}
// Grafana: $__interval = range / max data points (~1000 for a panel this wide), at least the
// datasource's timeInterval; $__rate_interval = max($__interval + scrape, 4 x scrape).
const interval = Math.max(scrape, Math.ceil((to - from) / 1000));
const rateInterval = Math.max(interval + scrape, 4 * scrape);
const expand = (expr) => expr.replaceAll('$job', o.job).replaceAll('$rank', '.*').replaceAll('$__rate_interval', `${rateInterval}s`)
  .replaceAll('$__interval', `${interval}s`).replaceAll('$__range', `${Math.ceil(to - from)}s`);
const legend = (fmt, metric) => (fmt ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? '');

// 2. The panels and their series.
const all = [];
const walk = (ps) => { for (const p of ps) { all.push(p); walk(p.panels ?? []); } };
walk(dashboard.panels);
const titles = o.panels ? o.panels.split(',').map((t) => t.trim()) : MAIN_PANELS;
const panels = [];
for (const title of titles) {
  const p = all.find((x) => x.title === title);
  if (!p) throw new Error(`the dashboard has no panel "${title}"`);
  const series = [];
  for (const t of p.targets ?? []) {
    const data = await prom('/api/v1/query_range', { query: expand(t.expr), start: String(from), end: String(to), step: `${interval}s` });
    for (const r of data.result) {
      const points = r.values.map(([ts, v]) => [ts, Number(v)]).filter(([, v]) => Number.isFinite(v));
      if (points.length === 0) continue;
      const name = legend(t.legendFormat, r.metric) || t.refId;
      const override = (p.fieldConfig?.overrides ?? []).find((ov) => ov.matcher?.id === 'byName' && ov.matcher.options === name);
      const prop = (id) => override?.properties.find((x) => x.id === id)?.value;
      series.push({ name, points, right: prop('custom.axisPlacement') === 'right', unit: prop('unit') ?? p.fieldConfig?.defaults?.unit });
    }
  }
  panels.push({ title, type: p.type, series });
}

// 3. Drawing. Units as Grafana prints them, roughly.
function fmt(v, unit) {
  const si = (x, units, base = 1000) => {
    let i = 0;
    while (Math.abs(x) >= base && i < units.length - 1) { x /= base; i++; }
    return `${+x.toPrecision(3)}${units[i]}`;
  };
  if (unit === 'percentunit') return `${+(v * 100).toPrecision(3)}%`;
  if (unit === 's') return v === 0 ? '0 s' : Math.abs(v) < 1 ? `${+(v * 1000).toPrecision(3)} ms` : Math.abs(v) < 120 ? `${+v.toPrecision(3)} s` : `${+(v / 60).toPrecision(3)} min`;
  if (unit === 'Bps') return `${si(v, [' B/s', ' kB/s', ' MB/s', ' GB/s'])}`;
  if (unit === 'bytes') return `${si(v, [' B', ' KiB', ' MiB', ' GiB'], 1024)}`;
  if (unit === 'sci') return v.toExponential(1);
  if (Number.isInteger(v) && Math.abs(v) < 1e5) return String(v);
  if (Math.abs(v) >= 1000) return si(v, ['', 'k', 'M', 'G']);
  return `${+v.toPrecision(3)}`;
}
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLS = 3, W = 460, H = 250, GAP = 12, HEAD = 56;
const width = COLS * W + (COLS + 1) * GAP;
const height = HEAD + Math.ceil(panels.length / COLS) * (H + GAP) + GAP;
const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
  `<rect width="${width}" height="${height}" fill="#111217"/>`,
  `<text x="${GAP}" y="26" fill="#d8d9da" font-size="18">ringtune training: job ${esc(o.job)}</text>`,
  `<text x="${GAP}" y="46" fill="#8e8e8e" font-size="12">${new Date(from * 1000).toISOString().slice(0, 19)}Z to ${new Date(to * 1000).toISOString().slice(11, 19)}Z (${Math.round(to - from)} s), rendered from Prometheus by scripts/render-dashboard.mjs; $__rate_interval ${rateInterval}s</text>`];

function timeseries(x0, y0, p) {
  const [l, r, t, b] = [x0 + 58, x0 + W - (p.series.some((s) => s.right) ? 58 : 12), y0 + 30, y0 + H - 44];
  const axes = [false, true].map((right) => {
    const vs = p.series.filter((s) => s.right === right).flatMap((s) => s.points.map(([, v]) => v));
    if (!vs.length) return undefined;
    let [lo, hi] = [Math.min(0, ...vs), Math.max(...vs)];
    if (hi === lo) hi = lo + 1;
    return { lo, hi, unit: p.series.find((s) => s.right === right).unit };
  });
  const X = (ts) => l + ((ts - from) / (to - from)) * (r - l);
  const Y = (v, ax) => b - ((v - ax.lo) / (ax.hi - ax.lo)) * (b - t);
  const out = [];
  for (let i = 0; i <= 4; i++) {
    const y = b - (i / 4) * (b - t);
    out.push(`<line x1="${l}" x2="${r}" y1="${y}" y2="${y}" stroke="#2c3235"/>`);
    if (axes[0]) out.push(`<text x="${l - 6}" y="${y + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">${esc(fmt(axes[0].lo + (i / 4) * (axes[0].hi - axes[0].lo), axes[0].unit))}</text>`);
    if (axes[1]) out.push(`<text x="${r + 6}" y="${y + 4}" fill="#8e8e8e" font-size="10">${esc(fmt(axes[1].lo + (i / 4) * (axes[1].hi - axes[1].lo), axes[1].unit))}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const ts = from + (i / 4) * (to - from);
    out.push(`<text x="${X(ts)}" y="${b + 14}" fill="#8e8e8e" font-size="10" text-anchor="middle">${new Date(ts * 1000).toISOString().slice(11, 19)}</text>`);
  }
  // Legend: entries flow left to right, wrapping (about 5.6 px per character at font size 10).
  let [lx, ly] = [l, b + 30];
  p.series.forEach((s, i) => {
    const ax = axes[s.right ? 1 : 0];
    const d = s.points.map(([ts, v], j) => `${j ? 'L' : 'M'}${X(ts).toFixed(1)},${Y(v, ax).toFixed(1)}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`);
    const label = `${s.name}${s.right ? ' (right)' : ''}`;
    const w = 14 + label.length * 5.6 + 14;
    if (lx + w > x0 + W - 8 && lx > l) [lx, ly] = [l, ly + 12];
    if (ly < y0 + H - 2) out.push(`<rect x="${lx}" y="${ly - 8}" width="10" height="3" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 14}" y="${ly - 4}" fill="#c7d0d9" font-size="10">${esc(label)}</text>`);
    lx += w;
  });
  if (!p.series.length) out.push(`<text x="${(l + r) / 2}" y="${(t + b) / 2}" fill="#8e8e8e" font-size="13" text-anchor="middle">No data</text>`);
  return out;
}

function stat(x0, y0, p) {
  const out = [];
  const n = Math.max(1, p.series.length);
  p.series.forEach((s, i) => {
    const cw = (W - 24) / Math.min(n, 4);
    const cx = x0 + 12 + (i % 4) * cw + cw / 2;
    const cy = y0 + 110 + Math.floor(i / 4) * 90;
    const last = s.points.at(-1)[1];
    out.push(`<text x="${cx}" y="${cy}" fill="${COLORS[i % COLORS.length]}" font-size="${n > 2 ? 30 : 40}" text-anchor="middle">${esc(fmt(last, s.unit))}</text>`,
      `<text x="${cx}" y="${cy + 22}" fill="#c7d0d9" font-size="12" text-anchor="middle">${esc(s.name)}</text>`);
  });
  if (!p.series.length) out.push(`<text x="${x0 + W / 2}" y="${y0 + H / 2}" fill="#8e8e8e" font-size="13" text-anchor="middle">No data</text>`);
  return out;
}

panels.forEach((p, i) => {
  const x0 = GAP + (i % COLS) * (W + GAP);
  const y0 = HEAD + Math.floor(i / COLS) * (H + GAP);
  svg.push(`<g><rect x="${x0}" y="${y0}" width="${W}" height="${H}" rx="3" fill="#181b1f" stroke="#2c3235"/>`,
    `<text x="${x0 + 10}" y="${y0 + 19}" fill="#d8d9da" font-size="13">${esc(p.title)}</text>`,
    ...(p.type === 'timeseries' ? timeseries(x0, y0, p) : stat(x0, y0, p)), '</g>');
});
svg.push('</svg>');

// Temp-then-rename, as everything ringtune writes.
const tmp = join(dirname(resolve(o.out)), `.${Date.now()}.render-dashboard.tmp`);
writeFileSync(tmp, svg.join('\n') + '\n');
renameSync(tmp, resolve(o.out));
const empty = panels.filter((p) => p.series.length === 0).map((p) => p.title);
console.log(`${o.out}: ${panels.length} panels, ${Math.round(to - from)} s of job ${o.job}${empty.length ? `; no data: ${empty.join(', ')}` : ''}`);
if (empty.length) process.exitCode = 1;
