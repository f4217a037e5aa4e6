/**
 * Fixtures for the run-record and coordinator tests: a temp output dir and a compiled job that
 * points at it. Nothing here loads a model or TensorFlow.js (the code under test never does).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { compileJob, type CompiledJob } from '../../src/config/compile.ts';
import type { HistoryLine } from '../../src/run/history.ts';

export async function tempDir(t: TestContext, prefix = 'ringtune-run-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (!process.env.KEEP_TMP) t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A compiled job writing to `<dir>/out`. The model and data paths are never opened: the record and
 * the coordinator only carry them into reports. `extra` is merged over the spec in YAML's shape.
 */
export function runJob(dir: string, extra: { cluster?: Record<string, unknown>; eval?: Record<string, unknown>; data?: Record<string, unknown> } = {}): CompiledJob {
  return compileJob({
    name: 'unit',
    model: './model', // a path: a bare `model` naming no directory would be the hub model "model"
    data: { train: 'train.jsonl', format: 'text', ...extra.data },
    training: { max_steps: 10 },
    eval: extra.eval ?? {},
    cluster: { workers: 2, ...extra.cluster },
    output: join(dir, 'out'),
  }, join(dir, 'job.yaml'));
}

/** metrics.jsonl as parsed lines (an absent file reads as none). */
export async function readHistory(outputDir: string): Promise<HistoryLine[]> {
  const text = await readFile(join(outputDir, 'metrics.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as HistoryLine);
}
