/**
 * The control plane against a NATS client that does not hold the job secret (issue 11's forged
 * messages): raw protobuf, tampered and replayed envelopes, a forged Done for every rank, an anonymous
 * status request. The run must finish exactly as it would have, the forgeries dropped and logged by
 * reason; what the sniffer sees carries no credential; a worker beyond the world size is told to
 * leave; killing `ringtune local` (SIGKILL) leaves no process behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, type Msg } from 'nats';
import protobuf from 'protobufjs';
import { ControlAuth, newJobSecret } from '../../src/control/auth.ts';
import { decode, encode } from '../../src/control/bus.ts';
import { startNatsServer } from '../../src/control/nats-server.ts';
import { subjects } from '../../src/control/subjects.ts';
import { CLI, history, makeJob, startLocal, until } from './cluster-helpers.ts';

const root = protobuf.loadSync(new URL('../../proto/ringtune/v1/control.proto', import.meta.url).pathname);
const Envelope = root.lookupType('ringtune.v1.Envelope');
type Env = { type: string; job: string; sender: string; seq: number; sentMs: number; body: Uint8Array; mac: Uint8Array };
const openEnv = (data: Uint8Array) => Envelope.toObject(Envelope.decode(data), { longs: Number, bytes: Uint8Array, defaults: true }) as Env;
const sealEnv = (e: Env) => Envelope.encode(Envelope.fromObject(e)).finish();

test('forged, tampered and replayed control messages are dropped; the run ends as it would have; nothing secret on the wire', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-forge-'));
  const nats = await startNatsServer(); // an open server: the attacker can connect, but has no job secret
  t.after(async () => { await nats.stop(); await rm(dir, { recursive: true, force: true }); });
  const name = 'forgejob';
  const job = await makeJob(dir, name, { workers: 2, maxSteps: 30, evalEvery: 10 });
  const secret = newJobSecret();
  const s = subjects(name);
  const nc = await connect({ servers: nats.url });
  t.after(() => nc.close());
  const seen: Array<{ subject: string; data: Uint8Array }> = [];
  const sub = nc.subscribe(`ringtune.${name}.>`, { callback: (_e, m: Msg) => seen.push({ subject: m.subject, data: m.data }) });
  t.after(() => sub.unsubscribe());

  const run = startLocal(job, ['--nats', nats.url], { RINGTUNE_JOB_SECRET: secret });
  t.after(() => run.child.kill('SIGKILL'));
  await until('the first step report', () => seen.some((m) => m.subject === s.step));

  // 1. Raw protobuf (the protocol before authentication): a StepReport from rank 5, an EvalReport with bad JSON.
  nc.publish(s.step, encode('StepReport', { runId: 'x', rank: 5, step: 1, loss: 0, count: 1, gradNorm: 0, lr: 0, inputTokens: 1, samples: 1, computeMs: 1, reduceMs: 1, paramHash: '', reduceBytes: 0 }));
  nc.publish(s.eval, encode('EvalReport', { runId: 'x', rank: 0, step: 10, stateJson: '{' }));
  // 2. A captured genuine StepReport, replayed as is, and tampered (rank 5) with its MAC kept.
  const real = seen.find((m) => m.subject === s.step)!;
  nc.publish(s.step, real.data);
  const tampered = openEnv(real.data);
  const report = decode('StepReport', tampered.body);
  nc.publish(s.step, sealEnv({ ...tampered, seq: tampered.seq + 1000, body: encode('StepReport', { ...report, rank: 5 }) }));
  // 3. Done for every rank, sealed with another secret (what a rogue client can do at best).
  const rogue = new ControlAuth(newJobSecret(), name, tampered.sender);
  for (const rank of [0, 1]) {
    nc.publish(s.done, sealEnv(rogue.seal('Done', encode('Done', { runId: report.runId, rank, step: 30, finalModelDir: '/tmp/evil' })) as Env));
  }
  // 4. An anonymous status request is not answered.
  await assert.rejects(nc.request(s.status, encode('StatusRequest', {}), { timeout: 700 }));

  assert.equal(await run.exit, 0, run.output().slice(-3000));
  const out = run.output();
  // Raw protobuf usually decodes as an envelope of some other type (protobuf is lenient): wrong-type or malformed.
  for (const reason of ['(wrong-type|malformed)', 'replay', 'bad-mac']) assert.match(out, new RegExp(`\\[control\\] rejected a message on ringtune\\.${name}\\.\\w+ \\(${reason}`), reason);
  const steps = (await history(join(dir, `out-${name}`))).filter((h) => h.type === 'train').map((h) => h.step);
  assert.deepEqual(steps, Array.from({ length: 30 }, (_, i) => i + 1), 'every step, once: the forged Done did not end the run');

  // What a NATS sniffer saw: every message sealed, no ring token or NATS credential in any of them.
  assert.ok(seen.length > 60);
  const assignment = seen.filter((m) => m.subject.startsWith(`ringtune.${name}.worker.`)).map((m) => openEnv(m.data));
  assert.equal(assignment.length, 2);
  for (const e of assignment) {
    const a = decode('Assignment', e.body) as Record<string, unknown>;
    assert.equal(a.ringToken, undefined);
    assert.ok(!/"(token|password)":"/.test(String(a.compiledJobJson)), 'no NATS credential in the job');
  }
  for (const m of seen) assert.ok(!Buffer.from(m.data).includes(Buffer.from(secret)), `the secret itself travelled on ${m.subject}`);
});

test('a worker beyond the world size is told to leave; SIGKILL of ringtune local leaves no process behind', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-hygiene-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const name = 'hygienejob';
  const job = await makeJob(dir, name, { workers: 2, maxSteps: 400 });
  const secret = newJobSecret();
  const run = startLocal(job, [], { RINGTUNE_JOB_SECRET: secret });
  t.after(() => run.child.kill('SIGKILL'));
  await until('training', () => /\[coordinator\] training/.test(run.output()));
  // Children of local: the coordinator, the workers and the keeper of nats-server (and its child).
  const descendants = (pid: number): number[] => {
    const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
    const rows = out.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    const kids = rows.filter(([, ppid]) => ppid === pid).map(([p]) => p);
    return kids.flatMap((k) => [k, ...descendants(k)]);
  };
  const procs = descendants(run.child.pid!);
  const commands = procs.map((p) => execFileSync('ps', ['-o', 'args=', '-p', String(p)], { encoding: 'utf8' }).trim());
  assert.ok(commands.some((c) => /nats-server/.test(c)) && commands.filter((c) => / worker /.test(c)).length === 2, commands.join('\n'));

  // The NATS URL local printed; a third worker with the right secret joins after the run started.
  const url = /NATS (nats:\/\/127\.0\.0\.1:\d+)/.exec(run.output())![1];
  const extra = spawn(process.execPath, [CLI, 'worker', '--nats', url, '--job', name, '--ring-port', '0', '--metrics-port', '0'],
    { env: { ...process.env, RINGTUNE_JOB_SECRET: secret, RINGTUNE_NATS_USER: 'worker', RINGTUNE_NATS_PASSWORD: 'wrong' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let extraOut = '';
  extra.stderr!.on('data', (d) => (extraOut += d));
  const extraCode = await new Promise<number>((resolve) => extra.once('exit', (c) => resolve(c ?? 1)));
  // Without the role's NATS password it cannot even connect to local's private server.
  assert.notEqual(extraCode, 0);
  assert.match(extraOut, /cannot connect to NATS|Authorization|authorization/i);

  run.child.kill('SIGKILL');
  await until('every child of local to exit', () => procs.every((p) => { try { process.kill(p, 0); return false; } catch { return true; } }), 15_000);
});
