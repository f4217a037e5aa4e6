/**
 * docs/metrics.md is the single truth: every metric its tables document is exposed by a real registry
 * (coordinator, worker, serve) with the documented type and label names, and every exposed metric
 * (process metrics aside) is documented. The registries are driven through every event first, so
 * series that appear only after their first event are there too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CoordinatorMetrics, EVAL_KEYS, WorkerMetrics, type Registry } from '../../src/metrics/metrics.ts';
import { ServeMetrics } from '../../src/serve/serve-metrics.ts';
import { GENERATION_METRICS, resultKeys } from '../../src/eval/index.ts';

const DOC = readFileSync(resolve(import.meta.dirname, '../../docs/metrics.md'), 'utf8');

interface Documented { type: string; labels: string[] }

/** The `| name | type | labels | meaning |` rows of the section whose heading starts with `heading`. */
function documented(heading: string): Map<string, Documented> {
  const start = DOC.indexOf(`\n## ${heading}`);
  assert.ok(start >= 0, `docs/metrics.md has no section ${heading}`);
  const end = DOC.indexOf('\n## ', start + 1);
  const out = new Map<string, Documented>();
  for (const line of DOC.slice(start, end < 0 ? undefined : end).split('\n')) {
    // Cells split on pipes that are not escaped (`match`\|`mismatch` is one cell).
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const m = /^`([a-z_:]+)`$/.exec(cells[1] ?? '');
    if (!line.startsWith('|') || !m) continue;
    const labels = cells[3].split(',').map((l) => l.trim().replace(/=.*$/, '')).filter((l) => l !== '' && l !== 'le');
    out.set(m[1], { type: cells[2].replace(/ \(info\)$/, ''), labels: labels.sort() });
  }
  assert.ok(out.size > 0, `no metric rows under ${heading}`);
  return out;
}

/** Type and label names of every family in the registry's exposition (histogram series folded into their family). */
async function exposed(registry: Registry): Promise<Map<string, Documented>> {
  const text = await registry.metrics();
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1], t[2]); labels.set(t[1], new Set()); continue; }
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!s || line.startsWith('#')) continue;
    const family = types.has(s[1]) ? s[1] : s[1].replace(/_(bucket|sum|count)$/, '');
    for (const m of (s[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) if (m[1] !== 'le') labels.get(family)?.add(m[1]);
  }
  const out = new Map<string, Documented>();
  for (const [name, type] of types) {
    if (/^(process|nodejs)_/.test(name)) continue; // prom-client's stock process metrics (docs: Process metrics)
    out.set(name, { type, labels: [...labels.get(name)!].sort() });
  }
  return out;
}

function compare(section: string, docs: Map<string, Documented>, got: Map<string, Documented>): void {
  assert.deepEqual([...got.keys()].filter((n) => !docs.has(n)), [], `${section}: exposed but not documented`);
  assert.deepEqual([...docs.keys()].filter((n) => !got.has(n)), [], `${section}: documented but not exposed`);
  for (const [name, d] of docs) assert.deepEqual(got.get(name), d, `${section}: ${name} (type, labels) differ from docs/metrics.md`);
}

test('coordinator metrics match the Coordinator table of docs/metrics.md', async () => {
  const m = new CoordinatorMetrics({ job: 'j' });
  m.statusFrom(() => ({ totalSteps: 10, workers: [{ rank: 0, heartbeatAgeMs: 10 }] }));
  m.observeStep({ step: 1, loss: 2, lr: 1e-3, gradNorm: 1, inputTokens: 64, samples: 2 });
  m.observeEval(1, Object.fromEntries(Object.keys(EVAL_KEYS).map((k) => [k, 1])));
  m.checkpointWritten(1);
  compare('Coordinator', documented('Coordinator'), await exposed(m.registry));
});

test('worker metrics match the Worker table of docs/metrics.md', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-docs-match-'));
  try {
    const m = new WorkerMetrics({ job: 'j', backend: 'cpu' });
    m.setRank(0);
    m.observeStep({ step: 1, localLoss: 2, lr: 1e-3, gradNorm: 1, inputTokens: 64, samples: 2, stepSeconds: 0.1, allreduceSeconds: 0.01, allreduceBytes: 10, skippedNonFinite: false });
    writeFileSync(join(dir, 'model.safetensors'), Buffer.alloc(1234));
    await m.checkpointWritten(0.5, dir);
    m.ringFrom({ rejected: { badToken: 0 }, costs: { cpuSeconds: 0.1 } });
    const got = await exposed(m.registry);
    compare('Worker', documented('Worker'), got);
    // Size read from disk: the one 1234-byte file.
    assert.match(await m.registry.metrics(), /ringtune_worker_checkpoint_size_bytes\{ringtune_job="j",rank="0"\} 1234\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serve metrics match the Serve table of docs/metrics.md', async () => {
  compare('Serve', documented('Serve'), await exposed(new ServeMetrics(() => 0).registry));
});

test('every evaluation result key src/eval produces has a documented place (EVAL_KEYS)', () => {
  const keys = new Set([...resultKeys('causal-lm', GENERATION_METRICS), ...resultKeys('classification', [])]);
  assert.deepEqual([...keys].filter((k) => !(k in EVAL_KEYS)), []);
  const scores = [...keys].filter((k) => EVAL_KEYS[k].kind === 'score');
  for (const k of scores) assert.match(DOC, new RegExp(`\`${k}\``), `docs/metrics.md does not name eval score ${k}`);
});
