/**
 * The short fault campaign (the long one is `npm run bench:chaos`): 2 workers in their own network
 * namespaces (own addresses, a bridge, nats-server and the coordinator on the bridge side), supervised
 * like Kubernetes pods, elastic `on_loss: wait`. Five faults: a NATS restart followed at once by a
 * coordinator SIGKILL (the pair that left holes in the campaign's metrics history: steps reported
 * during the outage and not yet re-sent when the coordinator died), a partition (link down longer
 * than the heartbeat timeout), a worker SIGKILL, a bad-link burst (netem, or tbf where the kernel has
 * no netem). The run must finish with every train step in metrics.jsonl once, in order (the
 * campaign's history check), and final parameters equal bit for bit to a fault-free run of the same
 * job (docs/reliability.md: a `wait` replacement and a coordinator takeover restore the N-rank ring).
 * Skipped, with the reason, where network namespaces cannot be made (not root).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { newJobSecret } from '../../src/control/auth.ts';
import { history, startLocal } from '../integration/cluster-helpers.ts';
import { assertSameFinal } from '../integration/elastic-helpers.ts';
import { ChaosCluster, within } from './cluster.ts';
import { chaosJob } from './job.ts';
import { runCampaign } from './faults.ts';
import { createTopology, destroyTopology, netnsUnavailable, removeStale, shapingMode } from './netns.ts';

const unavailable = netnsUnavailable();
if (unavailable) console.log(`# netns-faults skipped: ${unavailable}`);

test('netns faults (NATS restart + coordinator kill, partition, SIGKILL, bad link) under on_loss wait: every step recorded once, bit-identical to the fault-free run', { skip: unavailable ?? false, timeout: 480_000 }, async (t) => {
  removeStale();
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-netns-'));
  const topo = createTopology(2);
  const HB = 3000;
  // An evaluation every 12 steps: workers without a coordinator wait there (see job.ts).
  const { file, name, totalSteps } = await chaosJob(dir, { workers: 2, steps: 48, heartbeatTimeoutMs: HB, evalEvery: 12 });
  // The fault-free reference runs at the same time (its own NATS, loopback): the same job, another output.
  const ref = startLocal(file, ['--output', join(dir, 'out-ref')]);
  const c = new ChaosCluster({ topo, jobFile: file, jobName: name, secret: newJobSecret(), maxRestarts: 20, restartDelayMs: 300, logFile: join(dir, 'chaos.log') });
  t.after(async () => {
    await c.stop();
    if (ref.child.exitCode === null) ref.child.kill('SIGKILL');
    destroyTopology(topo);
    await rm(dir, { recursive: true, force: true });
  });
  await c.start();
  const results = await runCampaign(c, {
    seed: 1, count: 5, kinds: [], budgetMs: 360_000, heartbeatTimeoutMs: HB,
    sequence: [
      { kind: 'nats-restart', worker: -1, durationMs: 700 },
      { kind: 'sigkill-coordinator', worker: -1, durationMs: 0 },
      { kind: 'partition', worker: 1, durationMs: 2 * HB },
      { kind: 'sigkill-worker', worker: 0, durationMs: 0 },
      { kind: 'shape', worker: 1, durationMs: 2000 },
    ],
  }, { totalSteps, shape: { delayMs: 100, lossPct: 5, rateKbit: 2000 }, endMarginSteps: 4, healthyMs: 180_000, recoverMs: 120_000, gapMs: 300, log: (l) => t.diagnostic(l) });
  t.diagnostic(`shaping: ${shapingMode().why}`);
  // Generous: at load average 30 (five test suites sharing 2 cores) the last steps and the final
  // evaluation alone took minutes.
  const code = await within(c.done, 240_000, -1);
  assert.equal(code, 0, `the run did not complete:\n${c.lines.slice(-60).map((l) => `${(l.t / 1000).toFixed(1)} [${l.who}] ${l.line}`).join('\n')}`);

  assert.deepEqual(results.map((r) => r.kind), ['nats-restart', 'sigkill-coordinator', 'partition', 'sigkill-worker', 'shape'], 'every fault injected');
  for (const r of results) assert.notEqual(r.recoveryMs, null, `${r.kind} on ${r.target}: training never went on`);
  // The coordinator kill is taken over with the live workers; a partition twice the heartbeat timeout
  // and a SIGKILL are losses the coordinator names.
  assert.deepEqual(results[1]!.restarted, ['coordinator'], 'the workers outlived the coordinator');
  for (const r of results.slice(1, 4)) assert.match(r.verdict ?? '', /lost after step|ring epoch|failed after step|waiting for|recovering run/, `${r.kind}: no verdict`);
  assert.ok(results[3]!.restarted.includes('w0'), 'the killed worker was replaced');

  const steps = (await history(join(dir, `out-${name}`))).filter((x) => x.type === 'train').map((x) => Number(x.step));
  assert.deepEqual(steps, Array.from({ length: totalSteps }, (_, i) => i + 1), 'every train step recorded once, in order (the campaign\'s history check)');

  assert.equal(await ref.exit, 0, ref.output());
  await assertSameFinal(join(dir, `out-${name}`), join(dir, 'out-ref'));
});
