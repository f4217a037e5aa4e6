/**
 * A supervised ringtune cluster on a namespace topology (netns.ts), played the way Kubernetes runs the
 * JobSet of deploy/k8s: nats-server on the bridge address, `ringtune coordinator JOB
 * --resume-if-present` in the root namespace, worker i in namespace i (`ip netns exec`, its own address,
 * ring port 50051 in every namespace like a pod) with rank hint i. The supervisor restarts a worker or
 * the coordinator that exits (bounded count, a fixed back-off), until the coordinator exits 0.
 *
 * Every output line of every process is kept with the time it arrived (ms since `start`), so a fault
 * campaign can read detection and recovery off the coordinator's log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { connect } from 'node:net';
import { RING_PROCESS_ENV } from '../../src/collective/ring-options.ts';
import { freePort } from '../../src/control/nats-server.ts';
import { CLI, sleep } from '../integration/cluster-helpers.ts';
import type { Topology } from './netns.ts';

export type Role = 'nats' | 'coordinator' | `w${number}`;

export interface LogLine {
  /** ms since the cluster started */
  t: number;
  who: Role | 'supervisor';
  line: string;
}

export interface ClusterOptions {
  topo: Topology;
  jobFile: string;
  jobName: string;
  secret: string;
  /** Restarts of workers and the coordinator together, before the supervisor gives up. */
  maxRestarts: number;
  /** Wait before a restart (a pod's replacement is not instant either). */
  restartDelayMs: number;
  /** Also append every line here (a debugging aid; optional). */
  logFile?: string;
}

const RING_PORT = 50051;

export class ChaosCluster {
  readonly lines: LogLine[] = [];
  readonly procs = new Map<Role, ChildProcess>();
  /** Chosen once (free on the bridge address); a NATS restart reuses it. */
  natsPort = 0;
  /** Restarts done by the supervisor, by role. */
  readonly restarts = new Map<Role, number>();
  private readonly t0 = performance.now();
  private stopping = false;
  private finished = false;
  private settle!: { resolve: (code: number) => void; reject: (e: Error) => void };
  /** Resolves when the coordinator exits 0 (the run completed); rejects when the supervisor gives up. */
  readonly done = new Promise<number>((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(readonly o: ClusterOptions) {
    this.done.catch(() => {}); // observed by the caller; never an unhandled rejection
  }

  get natsUrl(): string {
    return `nats://${this.o.topo.hostAddr}:${this.natsPort}`;
  }

  now(): number {
    return performance.now() - this.t0;
  }

  get completed(): boolean {
    return this.finished;
  }

  note(line: string): void {
    this.push('supervisor', line);
  }

  async start(): Promise<void> {
    await this.startNats();
    this.startCoordinator();
    for (const h of this.o.topo.hosts) this.startWorker(h.index);
  }

  /** nats-server on the bridge address, on the same port every time (a restart keeps the URL). */
  async startNats(): Promise<void> {
    if (!this.natsPort) this.natsPort = await freePort(this.o.topo.hostAddr);
    const child = spawn('nats-server', ['-a', this.o.topo.hostAddr, '-p', String(this.natsPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.watch('nats', child);
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.o.topo.hostAddr, this.natsPort))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server did not listen on ${this.o.topo.hostAddr}:${this.natsPort}: ${this.tail('nats', 5)}`);
      await sleep(50);
    }
  }

  async stopNats(): Promise<void> {
    const c = this.procs.get('nats');
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }

  startCoordinator(): void {
    const args = [CLI, 'coordinator', this.o.jobFile, '--resume-if-present', '--nats', this.natsUrl, '--metrics-port', '0'];
    this.watch('coordinator', spawn(process.execPath, args, { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  startWorker(i: number): void {
    const h = this.o.topo.hosts[i]!;
    const args = ['netns', 'exec', h.ns, process.execPath, CLI, 'worker', '--nats', this.natsUrl, '--job', this.o.jobName,
      '--ring-host', h.addr, '--ring-port', String(RING_PORT), '--advertise', `${h.addr}:${RING_PORT}`, '--rank-hint', String(i),
      '--metrics-port', '0', '--threads', '1'];
    // `ip netns exec` execs node in place: the child's pid is the worker's (signals reach it directly).
    this.watch(`w${i}`, spawn('ip', args, { env: { ...this.env(), ...RING_PROCESS_ENV }, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, RINGTUNE_JOB_SECRET: this.o.secret };
  }

  /** The live process of `role`, if it is running. */
  running(role: Role): ChildProcess | undefined {
    const c = this.procs.get(role);
    return c && c.exitCode === null && c.signalCode === null ? c : undefined;
  }

  private watch(role: Role, child: ChildProcess): void {
    this.procs.set(role, child);
    this.push('supervisor', `${role} started (pid ${child.pid})`);
    const onData = (buf: Buffer) => {
      for (const l of String(buf).split('\n')) if (l.trim()) this.push(role, l);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      this.push('supervisor', `${role} (pid ${child.pid}) exited ${signal ?? code}`);
      if (role !== 'nats') this.onExit(role, code, signal);
    });
  }

  /** Kubernetes, played: the coordinator's exit 0 ends the run; any other exit is restarted. */
  private onExit(role: Role, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || this.finished) return;
    if (role === 'coordinator' && code === 0) {
      this.finished = true;
      this.settle.resolve(0);
      return;
    }
    const used = [...this.restarts.values()].reduce((a, b) => a + b, 0);
    if (used >= this.o.maxRestarts) {
      this.settle.reject(new Error(`gave up after ${used} restarts (${role} exited ${signal ?? code})`));
      return;
    }
    this.restarts.set(role, (this.restarts.get(role) ?? 0) + 1);
    // A worker that exits 0 was shut down by a finishing run: restarted only if the run goes on.
    const delay = code === 0 ? Math.max(this.o.restartDelayMs, 5000) : this.o.restartDelayMs;
    setTimeout(() => {
      if (this.stopping || this.finished || this.running(role)) return;
      if (role === 'coordinator') this.startCoordinator();
      else this.startWorker(Number(role.slice(1)));
    }, delay);
  }

  /** Kills every process (SIGCONT first: a stopped process cannot die of SIGKILL until resumed). */
  async stop(): Promise<void> {
    this.stopping = true;
    const exits: Promise<unknown>[] = [];
    for (const [, c] of this.procs) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      exits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    await within(Promise.all(exits), 10_000, undefined);
  }

  private push(who: LogLine['who'], line: string): void {
    const l = { t: this.now(), who, line };
    this.lines.push(l);
    if (this.o.logFile) appendFileSync(this.o.logFile, `${(l.t / 1000).toFixed(3)} [${who}] ${line}\n`);
  }

  /** The last `n` lines of `who`, for error messages. */
  tail(who: LogLine['who'], n = 30): string {
    return this.lines.filter((l) => l.who === who).slice(-n).map((l) => l.line).join('\n');
  }
}

/** `p`, or `fallback` after `ms` (the timer is cleared, so it never holds the process open). */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host, () => { s.end(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
