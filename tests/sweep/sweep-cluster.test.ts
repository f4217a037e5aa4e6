/**
 * `ringtune sweep --cluster`: the trials handed to a cluster that is already up — a nats-server and
 * two `ringtune worker --serve` processes started here, as a Kubernetes Deployment would keep them —
 * each trial a `ringtune coordinator` child of the sweep. The leaderboard equals the same sweep run
 * on local clusters of 2 workers (`--workers 2`, here both trials at once: `--parallel 2`, each with
 * its own nats-server), metric for metric: the same job on the same world size is the same arithmetic.
 * Last, SIGTERM to a serving worker between runs stops it and its child at once.
 * (A failed trial on a serving worker: tests/cli/worker-serve.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { CLI, jsonLines, setup, sweepCli } from './helpers.ts';

interface Served { child: ChildProcess; log: () => string; exited: Promise<number | null> }

function serveWorker(nats: string, secretFile: string, i: number): Served {
  const child = spawn(process.execPath, [CLI, 'worker', '--serve', '--nats', nats, '--job', 'lm', '--ring-host', '127.0.0.1', '--ring-port', '0',
    '--metrics-port', '0', '--rank-hint', String(i), '--threads', '1', '--secret-file', secretFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b) => { log += b; });
  return { child, log: () => log, exited: new Promise((r) => child.once('close', (c) => r(c))) };
}

const board = (events: Array<Record<string, unknown>>) => events.filter((e) => e.event === 'end')
  .map((e) => ({ trial: e.trial, status: e.status, steps: e.steps, metric: e.metric }))
  .sort((a, b) => String(a.trial).localeCompare(String(b.trial)));

test('sweep --cluster: trials handed to 2 serving workers; the same leaderboard as local --workers 2 (two at once)', async (t) => {
  const dir = await setup(t, ['space:', '  training.lr: [0.00001, 0.01]', 'metric: eval_loss']);
  const secretFile = join(dir, 'secret');
  await writeFile(join(dir, 'secret'), newJobSecret(), { mode: 0o600 });
  const nats = await startNatsServer();
  const workers = [0, 1].map((i) => serveWorker(nats.url, secretFile, i));
  t.after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await nats.stop();
  });

  const cluster = sweepCli([join(dir, 'sweep.yaml'), '--cluster', nats.url, '--secret-file', secretFile, '--workers', '2']);
  assert.equal(cluster.status, 0, cluster.stderr);
  assert.match(cluster.stderr, /\[sweep\] trial-0001 \(1\/2\) on job lm: training\.lr=0\.00001/);
  assert.match(cluster.stderr, /\[trial-0001\] \[coordinator\] job lm: waiting for 2 workers/);
  assert.match(cluster.stderr, /\[sweep\] trial-0002: loss [\d.]+ after 6 steps/);
  const onCluster = board(await jsonLines(join(dir, 'sw', 'sweep.jsonl')));

  const local = sweepCli([join(dir, 'sweep.yaml'), '--workers', '2', '--parallel', '2', '--threads', '1', '--output', join(dir, 'sw-local')]);
  assert.equal(local.status, 0, local.stderr);
  const onLocal = board(await jsonLines(join(dir, 'sw-local', 'sweep.jsonl')));
  assert.deepEqual(onCluster.map((r) => r.status), ['done', 'done']);
  assert.ok((onCluster[1].metric as number) < (onCluster[0].metric as number), 'the higher lr learns more in 6 steps');
  assert.deepEqual(onCluster, onLocal, 'the same metrics, trial for trial');
  const tables = [cluster.stdout, local.stdout].map((s) => s.split('\n').slice(2, 4).map((l) => l.split(/\s+/).slice(0, 5).join(' ')));
  assert.deepEqual(tables[0], tables[1]);

  // Each serving worker ran a worker process per trial, and started the next one for the next run.
  for (const w of workers) {
    assert.equal(w.child.exitCode, null, w.log());
    assert.match(w.log(), /\[serve\] run 2: the worker exited 0 after [\d.]+ s; next worker now/);
    assert.match(w.log(), /\[serve\] run 3: starting a worker/);
    assert.equal((w.log().match(/: done at step 6/g) ?? []).length, 2, w.log());
  }

  // SIGTERM to a serving worker waiting for its next run: it and its worker process exit at once.
  const [w] = workers;
  const t0 = Date.now();
  w.child.kill('SIGTERM');
  assert.equal(await w.exited, 143, w.log());
  assert.ok(Date.now() - t0 < 10_000, `exited after ${Date.now() - t0} ms`);
  assert.match(w.log(), /\[serve\] SIGTERM: the worker is only joining: exiting now/);
});
