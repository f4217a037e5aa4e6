/**
 * control/subjects.ts: every subject of a job is scoped by the job's name and distinct, so several
 * jobs share one NATS server without hearing each other (job names may contain dots, which NATS
 * reads as token separators); the phases are declared once and match the proto's comment.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { COORDINATOR_PHASES, WORKER_PHASES } from '../../src/control/phases.ts';
import { subjects } from '../../src/control/subjects.ts';

/** The concrete subjects one job uses, with a few worker ids of the shape workers give themselves. */
function all(job: string): string[] {
  const s = subjects(job);
  const workers = ['node1-4242-a1b2c3', 'gpu.host.local-7-0f0f0f'].map((id) => s.worker(id));
  return [...Object.values(s).filter((v): v is string => typeof v === 'string'), ...workers];
}

test('a job\'s subjects are distinct, under ringtune.<job>., and free of NATS wildcards', () => {
  const subs = all('tiny-gpt2_v1.0');
  assert.equal(new Set(subs).size, subs.length);
  for (const s of subs) {
    assert.ok(s.startsWith('ringtune.tiny-gpt2_v1.0.'), s);
    assert.doesNotMatch(s, /[*>\s]/);
  }
  assert.equal(subjects('j').worker('w-1-ab'), 'ringtune.j.worker.w-1-ab');
});

test('two jobs on one server share no subject, even when one name extends the other with a dot', () => {
  for (const [a, b] of [['a', 'b'], ['a', 'a.b'], ['a', 'a.worker'], ['x', 'x.status'], ['job', 'job-2']]) {
    const mine = new Set(all(a));
    assert.deepEqual(all(b).filter((s) => mine.has(s)), [], `${a} vs ${b}`);
  }
});

test('phases: declared once, each list distinct, worker phases as control.proto documents them', async () => {
  assert.equal(new Set(WORKER_PHASES).size, WORKER_PHASES.length);
  assert.equal(new Set(COORDINATOR_PHASES).size, COORDINATOR_PHASES.length);
  const proto = await readFile(new URL('../../proto/ringtune/v1/control.proto', import.meta.url), 'utf8');
  const documented = proto.match(/string phase = 3;\s*\/\/ (.*)/)?.[1].split('|').map((p) => p.trim());
  assert.deepEqual(documented, [...WORKER_PHASES]);
});
