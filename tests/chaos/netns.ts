/**
 * A small multi-host network on one machine, for fault tests: one Linux bridge in the root namespace
 * (it holds the first address of a private /24; nats-server and the coordinator live there) and one
 * network namespace per worker, joined to the bridge by a veth pair, each with its own address.
 *
 *   root ns:  rtc-<pid>-br 10.R.S.1/24 ── rtc-<pid>-h<i> ══ veth ══ rtc-<pid>-n<i> 10.R.S.(10+i)  (ns rtc-<pid>-w<i>)
 *
 * Every name this module creates starts with `rtc-<pid>-` (pid = the process that made it), so
 * `removeStale()` can delete what a killed earlier run left behind without touching anything else, and
 * nothing here ever addresses a host outside the /24 it created. Faults act on the host side of a
 * worker's veth: link down (a partition), a qdisc that delays and drops (a bad link).
 *
 * Shaping: `tc netem` (delay + loss) when the kernel has sch_netem; this machine's kernel does not
 * ("Specified qdisc kind is unknown"), so the fallback is `tbf`, a token bucket at a low rate with a
 * bounded queue: packets wait in the queue (delay) and what does not fit in `latency` is dropped
 * (loss). Which one ran is reported (`shapingMode`).
 */
import { execFileSync, spawnSync } from 'node:child_process';

export interface NsHost {
  index: number;
  /** Network namespace name (`ip netns exec <ns> ...`). */
  ns: string;
  /** Host-side veth (on the bridge): the faults act here. */
  hostIf: string;
  /** Namespace-side veth. */
  nsIf: string;
  addr: string;
}

export interface Topology {
  prefix: string;
  bridge: string;
  /** The bridge's address: nats-server binds it, the namespaces reach it. */
  hostAddr: string;
  hosts: NsHost[];
}

export type ShapingMode = 'netem' | 'tbf';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.error?.message ?? ''}${r.stderr ?? ''}`.trim() };
}

/**
 * Why namespace tests cannot run here, or undefined when they can: they need root (CAP_NET_ADMIN),
 * `ip` and a kernel that lets us create a namespace and a veth pair. Checked by doing it once.
 */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (platform is ${process.platform})`;
  if (process.getuid?.() !== 0) return `ip netns needs root (CAP_NET_ADMIN); running as uid ${process.getuid?.()}`;
  const probe = `rtc-${process.pid}-probe`;
  const add = tryRun('ip', ['netns', 'add', probe]);
  if (!add.ok) return `\`ip netns add ${probe}\` failed: ${add.err || 'ip not found'}`;
  tryRun('ip', ['netns', 'del', probe]);
  const veth = tryRun('ip', ['link', 'add', `rtc-${process.pid}-pa`, 'type', 'veth', 'peer', 'name', `rtc-${process.pid}-pb`]);
  if (!veth.ok) return `\`ip link add ... type veth\` failed: ${veth.err}`;
  tryRun('ip', ['link', 'del', `rtc-${process.pid}-pa`]);
  return undefined;
}

/** A /24 of 10.0.0.0/8 that no interface on this machine uses yet (seeded by the pid). */
function freeSubnet(): string {
  const used = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' });
  for (let k = 0; k < 200; k++) {
    const [a, b] = [200 + ((process.pid + k) % 50), (process.pid * 7 + k) % 250];
    const net = `10.${a}.${b}`;
    if (!used.includes(` ${net}.`)) return net;
  }
  throw new Error('no free 10.x.y.0/24 for the test network');
}

/** Creates the bridge and `workers` namespaces; on any error, removes what it made and rethrows. */
export function createTopology(workers: number): Topology {
  const prefix = `rtc-${process.pid}-`;
  const net = freeSubnet();
  const topo: Topology = { prefix, bridge: `${prefix}br`, hostAddr: `${net}.1`, hosts: [] };
  try {
    ip(['link', 'add', topo.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${topo.hostAddr}/24`, 'dev', topo.bridge]);
    ip(['link', 'set', topo.bridge, 'up']);
    for (let i = 0; i < workers; i++) {
      const h: NsHost = { index: i, ns: `${prefix}w${i}`, hostIf: `${prefix}h${i}`, nsIf: `${prefix}n${i}`, addr: `${net}.${10 + i}` };
      topo.hosts.push(h);
      ip(['netns', 'add', h.ns]);
      ip(['link', 'add', h.hostIf, 'type', 'veth', 'peer', 'name', h.nsIf]);
      ip(['link', 'set', h.hostIf, 'master', topo.bridge]);
      ip(['link', 'set', h.hostIf, 'up']);
      ip(['link', 'set', h.nsIf, 'netns', h.ns]);
      ip(['-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', h.nsIf]);
      ip(['-n', h.ns, 'link', 'set', h.nsIf, 'up']);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
    }
    return topo;
  } catch (err) {
    destroyTopology(topo);
    throw err;
  }
}

/** Removes everything `createTopology` made (idempotent; errors of already-gone parts ignored). */
export function destroyTopology(topo: Topology): void {
  for (const h of topo.hosts) {
    tryRun('ip', ['link', 'del', h.hostIf]); // deletes the peer in the namespace too
    tryRun('ip', ['netns', 'del', h.ns]);
  }
  tryRun('ip', ['link', 'del', topo.bridge]);
  removeStale(process.pid);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Deletes namespaces and links named `rtc-<pid>-*` whose pid is no longer running (a run killed
 * before its cleanup), and those of `alsoPid` (this process, at the end). Nothing else is touched.
 */
export function removeStale(alsoPid?: number): string[] {
  const removed: string[] = [];
  const mine = (name: string) => {
    const m = /^rtc-(\d+)-/.exec(name);
    return m !== null && (Number(m[1]) === alsoPid || !alive(Number(m[1])));
  };
  const links = tryRun('ip', ['-o', 'link', 'show']).ok ? execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }) : '';
  for (const m of links.matchAll(/^\d+: (rtc-\d+-[^:@\s]+)[@:]/gm)) {
    if (mine(m[1]!) && tryRun('ip', ['link', 'del', m[1]!]).ok) removed.push(m[1]!);
  }
  const spaces = tryRun('ip', ['netns', 'list']).ok ? execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }) : '';
  for (const m of spaces.matchAll(/^(rtc-\d+-\S+)/gm)) {
    if (mine(m[1]!) && tryRun('ip', ['netns', 'del', m[1]!]).ok) removed.push(m[1]!);
  }
  return removed;
}

/** A partition: the worker's link goes down (both ends lose carrier) or comes back. */
export function setLink(h: NsHost, up: boolean): void {
  ip(['link', 'set', h.hostIf, up ? 'up' : 'down']);
}

let mode: ShapingMode | undefined;
let netemError = '';

/** Whether this kernel shapes with netem or (no sch_netem) with tbf; probed once on a throwaway veth. */
export function shapingMode(): { mode: ShapingMode; why: string } {
  if (!mode) {
    const [a, b] = [`rtc-${process.pid}-qa`, `rtc-${process.pid}-qb`];
    ip(['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    try {
      const r = tryRun('tc', ['qdisc', 'add', 'dev', a, 'root', 'netem', 'delay', '10ms']);
      mode = r.ok ? 'netem' : 'tbf';
      netemError = r.err;
    } finally {
      tryRun('ip', ['link', 'del', a]);
    }
  }
  return { mode, why: mode === 'netem' ? 'tc netem' : `tc tbf (netem unavailable: ${netemError})` };
}

export interface Shape {
  delayMs: number;
  lossPct: number;
  /** tbf only: the link's rate (the delay comes from the queue at this rate). */
  rateKbit: number;
}

/**
 * A bad link on both directions of the worker's veth: netem `delay d loss l%`, or tbf at `rateKbit`
 * whose queue holds `delayMs` of traffic (more waits that long; beyond, it is dropped).
 */
export function shape(h: NsHost, s: Shape): string {
  const { mode: m } = shapingMode();
  const spec = m === 'netem'
    ? ['netem', 'delay', `${s.delayMs}ms`, 'loss', `${s.lossPct}%`]
    : ['tbf', 'rate', `${s.rateKbit}kbit`, 'burst', '16kb', 'latency', `${s.delayMs}ms`];
  ip(['link', 'set', h.hostIf, 'up']); // no-op unless a partition is in progress (never: faults are serial)
  execFileSync('tc', ['qdisc', 'replace', 'dev', h.hostIf, 'root', ...spec], { stdio: ['ignore', 'ignore', 'pipe'] });
  execFileSync('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'replace', 'dev', h.nsIf, 'root', ...spec], { stdio: ['ignore', 'ignore', 'pipe'] });
  return spec.join(' ');
}

export function unshape(h: NsHost): void {
  tryRun('tc', ['qdisc', 'del', 'dev', h.hostIf, 'root']);
  tryRun('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'del', 'dev', h.nsIf, 'root']);
}
