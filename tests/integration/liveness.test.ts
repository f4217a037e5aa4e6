/**
 * Liveness does not depend on compute (issue 15): a 2-worker run whose single micro-batch per step
 * takes more than 3x cluster.heartbeat_timeout_ms finishes, because heartbeats come from a thread
 * compute never blocks; while a rank is inside that micro-batch, `ringtune status` shows it alive and
 * says what it is doing and for how long.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { newJobSecret } from '../../src/control/auth.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { createModelDir } from '../../src/model/create.ts';
import { lmLines, ready, writeLines } from '../train/fixtures.ts';
import { CLI, history, startLocal } from './cluster-helpers.ts';

const run = promisify(execFile);
const TIMEOUT_MS = 1000;

test('a micro-batch longer than 3x the heartbeat timeout: the run finishes and status reports the busy rank as alive', async (t) => {
  await ready;
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-liveness-'));
  const nats = await startNatsServer();
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const model = join(dir, 'base');
  await createModelDir({ family: 'llama', preset: 'small', out: model, seed: 1 });
  await writeLines(join(dir, 'train.jsonl'), lmLines(6000, 7));
  const name = 'slowjob';
  const out = join(dir, 'out');
  // One micro-batch per rank per step, packed to full 256-token rows: seconds of compute in one piece.
  const job = {
    name, model, output: out,
    data: { train: join(dir, 'train.jsonl'), format: 'text', eval_fraction: 0.01, max_seq_len: 256, packing: true },
    training: { max_steps: 2, global_batch: 64, micro_batch: 32, lr: 1e-3, schedule: 'constant', seed: 1 },
    cluster: { workers: 2, heartbeat_interval_ms: 200, heartbeat_timeout_ms: TIMEOUT_MS },
  };
  const jobFile = join(dir, 'job.yaml');
  await writeFile(jobFile, stringify(job));
  const secret = newJobSecret();
  const local = startLocal(jobFile, ['--nats', nats.url, '--threads', '1'], { RINGTUNE_JOB_SECRET: secret });
  t.after(() => local.child.kill('SIGKILL'));

  // Poll status while the run goes: some answer must show a rank alive inside a long micro-batch.
  let busySeen: { activity: string; activityMs: number; heartbeatAgeMs: number } | undefined;
  let exited = false;
  void local.exit.then(() => (exited = true));
  // Not before the ranks are assigned: until then no rank can be busy, and each `ringtune status` is a
  // process start that takes the cores from the coordinator and workers starting beside it.
  while (!exited && !/\[coordinator\] loading/.test(local.output())) await new Promise((r) => setTimeout(r, 50));
  while (!exited && !busySeen) {
    const r = await run(process.execPath, [CLI, 'status', '--job', name, '--nats', nats.url], { env: { ...process.env, RINGTUNE_JOB_SECRET: secret } }).catch(() => undefined);
    if (r) {
      const s = JSON.parse(r.stdout) as { workers?: Array<{ activity?: string; activityMs?: number; heartbeatAgeMs: number }> };
      const w = s.workers?.find((x) => /micro-batch 1\/1/.test(x.activity ?? '') && (x.activityMs ?? 0) > TIMEOUT_MS);
      if (w) busySeen = { activity: w.activity!, activityMs: w.activityMs!, heartbeatAgeMs: w.heartbeatAgeMs };
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const code = await local.exit;
  assert.equal(code, 0, local.output());
  const steps = (await history(out)).filter((h) => h.type === 'train');
  assert.equal(steps.length, 2);
  t.diagnostic(`compute_ms ${steps.map((s) => s.compute_ms).join(', ')}; busy seen ${JSON.stringify(busySeen)}`);
  // The premise: a step's one micro-batch really held a worker's main thread for > 3x the timeout.
  const longest = Math.max(...steps.map((s) => Number(s.compute_ms)));
  assert.ok(longest > 3 * TIMEOUT_MS, `the longest step computed in ${longest} ms: not long enough to test anything`);
  assert.ok(busySeen, 'status never showed a rank inside a micro-batch longer than the heartbeat timeout');
  assert.ok(busySeen.heartbeatAgeMs < TIMEOUT_MS, `the busy rank's last heartbeat was ${busySeen.heartbeatAgeMs} ms old`);
  assert.match(busySeen.activity, /^step \d+: micro-batch 1\/1 forward\+backward$/);
});
