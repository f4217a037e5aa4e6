/**
 * A RatingsSummary for people: ratings.md (Markdown tables) and the "Human ratings" section of a
 * run's report.html (plain HTML tables, no scripts). Both show the same three tables: mean +- 95% CI
 * per model and criterion, pairwise win rates, Krippendorff's alpha per criterion.
 */
import type { RatingsSummary } from './ratings.ts';

const f2 = (x: number | null) => (x === null ? '-' : x.toFixed(2));
const f3 = (x: number | null) => (x === null ? '-' : x.toFixed(3));
const ci = (m: { mean: number | null; low: number | null; high: number | null }) =>
  m.mean === null ? '-' : m.low === null ? `${f2(m.mean)} (n < 2: no interval)` : `${f2(m.mean)} [${f2(m.low)}, ${f2(m.high)}]`;
const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(0)}%`);

/** Alpha as Krippendorff reads it: >= 0.800 reliable, >= 0.667 tentative conclusions only, below that not. */
export function alphaVerdict(alpha: number | null): string {
  if (alpha === null) return 'undefined (no sample has two raters, or no variation)';
  return alpha >= 0.8 ? 'reliable (>= 0.800)' : alpha >= 0.667 ? 'tentative (0.667-0.800)' : 'unreliable (< 0.667)';
}

interface Table { caption: string; head: string[]; rows: string[][] }

function tables(s: RatingsSummary): Table[] {
  const comments: Table[] = s.comments.length === 0 ? [] : [{
    caption: "Raters' comments (sample id, model, prompt)",
    head: ['sample', 'model', 'prompt', 'rater', 'comment'],
    rows: s.comments.map((c) => [c.id, c.model, String(c.prompt), c.rater, c.comment.replace(/\s*\r?\n\s*/g, ' / ')]),
  }];
  return [
    {
      caption: `Mean score per model (${s.scale.min}-${s.scale.max}), ${s.methods.interval}`,
      head: ['model', ...s.criteria.map((c) => `${c} mean [95% CI]`), 'samples rated'],
      rows: s.models.map((m) => [m.model, ...s.criteria.map((c) => ci(m.criteria[c])), String(Math.max(...s.criteria.map((c) => m.criteria[c].n)))]),
    },
    {
      caption: `Pairwise win rate of A against B: ${s.methods.winRate}`,
      head: ['criterion', 'A', 'B', 'A wins', 'ties', 'B wins', 'prompts', 'A win rate'],
      rows: s.pairwise.map((p) => [p.criterion, p.a, p.b, String(p.wins), String(p.ties), String(p.losses), String(p.prompts), pct(p.rate)]),
    },
    {
      caption: `Inter-rater agreement: ${s.methods.agreement}`,
      head: ['criterion', 'alpha', 'samples with >= 2 raters', 'ratings in them', 'reading'],
      rows: s.agreement.map((a) => [a.criterion, f3(a.alpha), String(a.pairableUnits), String(a.pairableValues), alphaVerdict(a.alpha)]),
    },
    ...comments,
  ];
}

const summaryLine = (s: RatingsSummary) =>
  `${s.ratings} ratings by ${s.raters.length} rater${s.raters.length === 1 ? '' : 's'} (${s.raters.join(', ')}) of ${s.ratedSamples} of ${s.samples} samples (set ${s.tag}).`;

export function ratingsMarkdown(s: RatingsSummary): string {
  const md = (cell: string) => cell.replace(/\|/g, '\\|');
  const out = ['# Human ratings', '', summaryLine(s), ''];
  for (const t of tables(s)) {
    out.push(`${t.caption}:`, '', `| ${t.head.map(md).join(' | ')} |`, `|${t.head.map(() => '---').join('|')}|`);
    for (const r of t.rows) out.push(`| ${r.map(md).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n');
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The report.html section (without the markers report.ts puts around it). */
export function ratingsHtml(s: RatingsSummary): string {
  const html = tables(s).map((t) => `<table class="cm"><caption>${esc(t.caption)}</caption>
<tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${t.rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th>${esc(c)}</th>` : `<td>${esc(c)}</td>`)).join('')}</tr>`).join('\n')}</table>`);
  return `<h2>Human ratings</h2><p>${esc(summaryLine(s))} Imported with <code>ringtune ratings import</code>.</p>\n${html.join('\n')}`;
}
