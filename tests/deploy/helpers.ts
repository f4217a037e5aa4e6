/** Shared by the deploy tests: the dashboard's PromQL expressions and the metric names in them, the Job controller's podFailurePolicy rule, rendering an overlay. */
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

const ROOT = resolve(import.meta.dirname, '../..');
export const DASHBOARD_PATH = join(ROOT, 'deploy/grafana/dashboards/ringtune.json');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export interface DashboardQuery { where: string; expr: string }

/** Every PromQL expression of the dashboard: panel targets (rows included) and annotations. */
export function dashboardQueries(dash: Obj): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: Obj[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  for (const a of dash.annotations?.list ?? []) if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  return out;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** Metric names in a PromQL expression: identifiers outside strings, label matchers, ranges and groupings that are not functions. */
export function metricNamesIn(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ')
    .replace(/\b\d[\w.]*/g, ' ');
  const names: string[] = [];
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    if (s.slice(m.index + m[0].length).trimStart().startsWith('(')) continue; // a function or an aggregation
    if (!PROMQL_WORDS.has(m[0].toLowerCase())) names.push(m[0]);
  }
  return names;
}


/** What a batch/v1 Job does with a failed pod: its podFailurePolicy's first matching rule, else Count. */
export type PodFailureAction = 'FailJob' | 'FailIndex' | 'Ignore' | 'Count';

/**
 * Kubernetes' podFailurePolicy evaluation (rules in order, the first that matches decides; none: Count
 * toward backoffLimit / backoffLimitPerIndex), for a pod whose container `container` exited with
 * `exitCode` (128 + the signal for a kill) and, when `disruption`, carries the DisruptionTarget condition.
 */
export function podFailureAction(jobSpec: Obj, container: string, exitCode: number, disruption = false): PodFailureAction {
  for (const r of (jobSpec.podFailurePolicy?.rules ?? []) as Obj[]) {
    if (r.onExitCodes) {
      const e = r.onExitCodes;
      if (e.containerName !== undefined && e.containerName !== container) continue;
      const listed = (e.values as number[]).includes(exitCode);
      if (exitCode !== 0 && (e.operator === 'In' ? listed : !listed)) return r.action;
    } else if (r.onPodConditions) {
      if (disruption && (r.onPodConditions as Obj[]).some((c) => c.type === 'DisruptionTarget' && (c.status ?? 'True') === 'True')) return r.action;
    }
  }
  return 'Count';
}

/** `kubectl kustomize dir`, parsed: every rendered object (kubectl renders offline, no cluster needed). */
export function renderKustomize(dir: string): Obj[] {
  const kubectl = ['/usr/bin/kubectl', 'kubectl'].find((k) => spawnSync(k, ['version', '--client'], { stdio: 'ignore' }).status === 0);
  if (!kubectl) throw new Error('kubectl not found: install it (it renders the kustomize overlays)');
  const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter((o) => o !== null);
}
