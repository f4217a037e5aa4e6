/**
 * A private nats-server for `ringtune local` and the tests: Debian's binary from PATH, bound to
 * 127.0.0.1 on a free port, stopped with the parent. Missing binary: installed from Debian when
 * running as root, else an error with the exact command to run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingtuneError } from '../errors.ts';

export class NatsServerMissingError extends RingtuneError {
  override readonly name: string = 'NatsServerMissingError';
}

/** A port the OS reports free right now (bind to 0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function onPath(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

export function ensureNatsServerInstalled(log: (l: string) => void): void {
  if (onPath('nats-server')) return;
  const cmd = 'apt-get update && apt-get install -y nats-server';
  if (process.getuid?.() !== 0) throw new NatsServerMissingError(`nats-server is not installed; run: sudo sh -c '${cmd}' (or pass --nats URL of a running server)`);
  log(`[ringtune] nats-server missing: ${cmd}`);
  const r = spawnSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`], { stdio: 'inherit' });
  if (r.status !== 0 || !onPath('nats-server')) throw new NatsServerMissingError(`installing nats-server failed; run: ${cmd}`);
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new RingtuneError(`nats-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface NatsServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** A NATS user and the subjects it may publish and subscribe to (nats-server `authorization.users`). */
export interface NatsUser {
  user: string;
  password: string;
  publish: string[];
  subscribe: string[];
}

export interface NatsServerOptions {
  token?: string;
  /** Users with per-user subject permissions; nothing else may connect. */
  users?: NatsUser[];
  /** A fixed port (tests restart a server at the same address); default a free one. */
  port?: number;
  /** Stop the server when this process's parent (pid) exits, even by SIGKILL (bin/keep-child.mjs). */
  diesWithParentOf?: number;
  log?: (l: string) => void;
}

const KEEPER = fileURLToPath(new URL('../../bin/keep-child.mjs', import.meta.url));

/** nats-server's config syntax accepts JSON values; the file is private to this process (0600, own temp dir). */
function authorizationConfig(users: NatsUser[]): string {
  return `authorization: ${JSON.stringify({ users: users.map((u) => ({ user: u.user, password: u.password, permissions: { publish: u.publish, subscribe: u.subscribe } })) })}\n`;
}

export async function startNatsServer(o: NatsServerOptions = {}): Promise<NatsServer> {
  ensureNatsServerInstalled(o.log ?? (() => {}));
  const port = o.port ?? (await freePort());
  const args = ['-a', '127.0.0.1', '-p', String(port), '--http_port', '0'];
  if (o.token) args.push('--auth', o.token);
  let confDir: string | undefined;
  if (o.users?.length) {
    confDir = await mkdtemp(join(tmpdir(), 'ringtune-nats-'));
    const conf = join(confDir, 'nats.conf');
    await writeFile(conf, authorizationConfig(o.users), { mode: 0o600 });
    args.push('-c', conf);
  }
  const proc = o.diesWithParentOf
    ? spawn(process.execPath, [KEEPER, String(o.diesWithParentOf), 'nats-server', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    await Promise.race([waitForPort(port, 10_000), exited.then(() => { throw new RingtuneError(`nats-server exited: ${stderr.trim()}`); })]);
  } catch (err) {
    proc.kill(o.diesWithParentOf ? 'SIGTERM' : 'SIGKILL'); // the keeper passes SIGTERM on; killed, it would orphan the server
    throw err;
  } finally {
    // nats-server read its config at start (it listens only after): the passwords need not stay on disk.
    if (confDir) await rm(confDir, { recursive: true, force: true });
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: proc,
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
