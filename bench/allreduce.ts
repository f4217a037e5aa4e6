/**
 * All-reduce benchmark: N separate OS processes on this machine, real gRPC on 127.0.0.1, plus a raw
 * TCP transfer (node `net`, one stream, 64 MiB) measured in the same run as the ceiling.
 *
 *   npm run bench:allreduce                       # N = 2, 4; 1, 4, 16, 64 MiB; fp32, bf16, fp16; all transports + Gloo
 *   npm run bench:allreduce -- --worlds 2 --sizes 64 --codecs fp32 --reps 9 --message-kib 1024 --malloc default
 *   npm run bench:allreduce -- --transport raw-h2 # grpc-js | h2 | raw-h2 | a,b | all (default): rings of each, in turn
 *   npm run bench:allreduce -- --gloo off         # skip the Gloo anchor (it runs when /usr/bin/python3 has torch)
 *   npm run bench:allreduce -- --gloo-wait-s 120  # the anchor waits at most 120 s (not 15 min) for a quiet machine
 *   npm run bench:allreduce -- --kernels native,js # A/B: each ring with the native add/bf16 kernels, then
 *                                                 # with the JavaScript loops (rows "raw-h2/js"); default native
 *   npm run bench:allreduce -- --ring-thread main,worker  # each rank's ring on its main thread, then in a
 *                                                 # worker thread over a SharedArrayBuffer (rows "raw-h2@thr")
 *   npm run bench:allreduce -- --connections 1,2  # ring.connections: each link striped over 1, then 2
 *                                                 # connections (one thread each; an --ab axis, so with
 *                                                 # --alternate K); "copy ms" = the gradient's copy into and
 *                                                 # out of the stripes' shared buffer; --shared-buf on skips it
 *
 * "loop max ms" is the longest delay a 1 ms timer on the rank's main thread saw during the timed
 * collectives (monitorEventLoopDelay): how long a callback there would have waited.
 *
 * Gloo anchor (../shared/anchors/allreduce_gloo.py, torch.distributed all_reduce SUM fp32 over 127.0.0.1)
 * runs in the same invocation, after the rings, for the same world sizes and fp32 sizes; each fp32 row
 * then shows busbw / Gloo's busbw. cpu s/GB = CPU seconds per rank per GB of payload each rank sends
 * (2(N-1)/N * S), so a regression in cost per byte shows whatever the wall time.
 *
 * Time per collective = the slowest rank's time for that iteration; we quote the median over `reps`
 * iterations after `warmup`. algbw = S / t, busbw = 2(N-1)/N * S / t (NCCL's definition), with
 * MB = 10^6 bytes and S the fp32 buffer size whatever the wire codec. Writes bench/results/allreduce.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { GrpcRing } from '../src/collective/grpc-ring.ts';
import type { GrpcRingOptions } from '../src/collective/ring-options.ts';
import { startRingThread } from './allreduce-thread.ts';
import type { CodecName } from '../src/collective/codecs.ts';
import { ringKernelsStatus, useNativeRingKernels } from '../src/collective/kernels.ts';
import { usePlacedCopies } from '../src/collective/ring-allreduce.ts';
import { RING_PROCESS_ENV } from '../src/collective/ring-options.ts';
import { RING_TRANSPORTS, type RingTransportName } from '../src/collective/transport.ts';

const MiB = 1 << 20;
const self = fileURLToPath(import.meta.url);

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/** Which per-byte loops the ring workers use: the native kernels (kernels.ts) or the JavaScript ones. */
type Kernels = 'native' | 'js';

interface Plan {
  peers: string[];
  sizesMiB: number[];
  codecs: CodecName[];
  warmup: number;
  reps: number;
}

// ---- worker process: one rank -------------------------------------------------------------------
/** What a rank's benchmark loop drives: the ring on this thread, or a proxy to the ring in a worker thread. */
export interface BenchRing {
  readonly address: string;
  connect(peers: string[]): Promise<void>;
  /** A gradient buffer the ring can reduce (shared memory when the ring runs in another thread). */
  alloc(elements: number): Float32Array;
  allReduce(buf: Float32Array, o: { step: number; codec: CodecName }): Promise<void>;
  close(): Promise<void>;
  /** Seconds spent so far copying gradients into and out of a striped ring's shared buffer. */
  copySeconds?(): number;
}

/** The ring options every bench rank uses (also sent to the ring thread). */
export function benchRingOptions(rank: number, worldSize: number): GrpcRingOptions {
  return {
    jobId: 'bench', rank, worldSize, token: 'bench-token',
    messageBytes: Number(flag('message-kib', '1024')) * 1024, inflightMessages: Number(flag('inflight', '4')),
    // The ring's default growth (4 MiB), which a ring that sets messageBytes only gets when it asks.
    largeMessageBytes: Math.max(Number(flag('large-message-kib', '4096')), Number(flag('message-kib', '1024'))) * 1024,
    transport: flag('transport', 'raw-h2') as RingTransportName,
    connections: Number(flag('connections', '1')),
  };
}

async function worker(): Promise<void> {
  const rank = Number(flag('rank', '0'));
  const worldSize = Number(flag('world', '2'));
  const kernels = flag('kernels', 'native') as Kernels;
  if (kernels === 'js') useNativeRingKernels(false);
  if (flag('placed', 'on') === 'off') usePlacedCopies(false);
  let ring: BenchRing;
  if (flag('ring-thread', 'main') === 'worker') {
    ring = await startRingThread(benchRingOptions(rank, worldSize), kernels);
  } else {
    const g = await GrpcRing.create(benchRingOptions(rank, worldSize));
    // --shared-buf on: the gradient already lives in shared memory, so a striped ring copies nothing.
    const shared = flag('shared-buf', 'off') === 'on';
    ring = {
      address: g.address, connect: (peers) => g.connect(peers),
      alloc: (n) => (shared ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n)),
      allReduce: (buf, o) => g.allReduce(buf, { ...o, op: 'sum', timeoutMs: 120_000 }), close: () => g.close(),
      copySeconds: () => g.striping.copySeconds,
    };
  }
  console.log(`ADDR ${ring.address}`);
  const lines = createInterface({ input: process.stdin });
  const stdin = lines[Symbol.asyncIterator]();
  const plan = JSON.parse((await stdin.next()).value as string) as Plan;
  await ring.connect(plan.peers);
  // How long this thread's event loop is held up while collectives run (what a heartbeat or any other
  // callback on it would wait): the longest delay a 1 ms timer saw.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let step = 0;
  for (const sizeMiB of plan.sizesMiB) {
    const buf = ring.alloc((sizeMiB * MiB) / 4).fill(1); // allocated and touched once per size
    for (const codec of plan.codecs) {
      const times: number[] = [];
      // Summed over the timed collectives: process CPU (all threads) split user / kernel, minor page
      // faults, voluntary context switches (the event loop slept in epoll) and involuntary ones (preempted).
      const sum = { userMs: 0, sysMs: 0, faults: 0, volCs: 0, involCs: 0, reads: 0, writes: 0, copyMs: 0 };
      loop.reset();
      for (let it = 0; it < plan.warmup + plan.reps; it++) {
        buf.fill(rank + 1);
        const [r0, io0, t0, c0] = [process.resourceUsage(), ioSyscalls(), performance.now(), ring.copySeconds?.() ?? 0];
        if (it === plan.warmup) loop.enable();
        await ring.allReduce(buf, { step: step++, codec });
        if (it < plan.warmup) continue;
        times.push(performance.now() - t0);
        const r = process.resourceUsage();
        const io = ioSyscalls();
        sum.copyMs += ((ring.copySeconds?.() ?? 0) - c0) * 1000;
        sum.reads += io.reads - io0.reads;
        sum.writes += io.writes - io0.writes;
        sum.userMs += (r.userCPUTime - r0.userCPUTime) / 1000;
        sum.sysMs += (r.systemCPUTime - r0.systemCPUTime) / 1000;
        sum.faults += r.minorPageFault - r0.minorPageFault;
        sum.volCs += r.voluntaryContextSwitches - r0.voluntaryContextSwitches;
        sum.involCs += r.involuntaryContextSwitches - r0.involuntaryContextSwitches;
      }
      loop.disable();
      const want = (worldSize * (worldSize + 1)) / 2;
      if (buf[0] !== want || buf[buf.length - 1] !== want) throw new Error(`wrong result ${buf[0]} != ${want}`);
      const loopMaxMs = loop.count > 0 ? loop.max / 1e6 : 0;
      const per = (x: number) => x / plan.reps;
      console.log(`RESULT ${JSON.stringify({
        sizeMiB, codec, times, cpuMs: per(sum.userMs + sum.sysMs), sysMs: per(sum.sysMs), faults: per(sum.faults),
        volCs: per(sum.volCs), involCs: per(sum.involCs), reads: per(sum.reads), writes: per(sum.writes), copyMs: per(sum.copyMs), loopMaxMs,
      })}`);
    }
  }
  // Close only once every rank is done: a rank that closes right after its last collective can
  // cancel a neighbour's stream before that neighbour has read the last message (seen with grpc-js,
  // whose send resolves once the message is queued, under load 10+).
  console.log('DONE');
  await stdin.next();
  await ring.close();
  lines.close();
}

/** read/readv and write/writev system calls of this process so far (/proc/self/io); 0 without procfs. */
function ioSyscalls(): { reads: number; writes: number } {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    return { reads: Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0), writes: Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0) };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

// ---- raw TCP ceiling ----------------------------------------------------------------------------
async function tcpSink(): Promise<void> {
  const total = Number(flag('bytes', String(64 * MiB)));
  const server = net.createServer((s) => {
    let got = 0;
    s.on('data', (b) => {
      got += b.length;
      if (got >= total) {
        got -= total;
        s.write('k');
      }
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`ADDR 127.0.0.1:${(server.address() as net.AddressInfo).port}`));
  process.stdin.on('end', () => server.close(() => process.exit(0))).resume();
}

async function tcpCeiling(reps: number): Promise<number[]> {
  const total = 64 * MiB;
  const { child, address } = await spawnChild(['--tcp-sink', '--bytes', String(total)]);
  const [host, port] = address.split(':');
  const sock = net.connect(Number(port), host!);
  await new Promise((r) => sock.once('connect', r));
  const src = Buffer.alloc(MiB, 7);
  const times: number[] = [];
  for (let it = 0; it < reps + 1; it++) {
    const t0 = performance.now();
    const acked = new Promise((r) => sock.once('data', r));
    for (let sent = 0; sent < total; sent += MiB) if (!sock.write(src)) await new Promise((r) => sock.once('drain', r));
    await acked;
    if (it > 0) times.push(performance.now() - t0);
  }
  sock.destroy();
  child.stdin!.end();
  await new Promise((r) => child.once('exit', r));
  return times;
}

// ---- orchestration ------------------------------------------------------------------------------
async function spawnChild(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; address: string; lines: AsyncIterator<string> }> {
  // RINGTUNE_BENCH_CPU_PROF=dir writes a V8 CPU profile per child process into dir.
  const prof = process.env.RINGTUNE_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.RINGTUNE_BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', self, ...args], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = (await lines.next()).value as string | undefined;
  if (!first?.startsWith('ADDR ')) throw new Error(`child ${args.join(' ')} did not report an address`);
  return { child, address: first.slice(5), lines };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * How a rank runs its ring: which per-byte loops, on which thread, and `extra` worker flags of an --ab
 * axis (e.g. ['--message-kib', '4096']; they come first, so they win over the defaults passed after).
 */
interface Variant {
  kernels: Kernels;
  thread: 'main' | 'worker';
  extra: string[];
  /** Appended to the transport's name in the table ('' without --ab). */
  label: string;
}

async function runWorld(n: number, transport: RingTransportName, { kernels, thread, extra, label }: Variant, plan: Omit<Plan, 'peers'>, passthrough: string[], env: NodeJS.ProcessEnv) {
  const kids = await Promise.all(
    Array.from({ length: n }, (_, rank) =>
      spawnChild(['--worker', '--rank', String(rank), '--world', String(n), '--transport', transport, '--kernels', kernels, '--ring-thread', thread, ...extra, ...passthrough], env),
    ),
  );
  const full: Plan = { ...plan, peers: kids.map((k) => k.address) };
  for (const k of kids) k.child.stdin!.write(`${JSON.stringify(full)}\n`);
  const perRank = await Promise.all(
    kids.map(async (k) => {
      const out: { sizeMiB: number; codec: CodecName; times: number[]; cpuMs: number; sysMs: number; faults: number; volCs: number; involCs: number; reads: number; writes: number; copyMs: number; loopMaxMs: number }[] = [];
      for (let r = await k.lines.next(); !r.done && r.value !== 'DONE'; r = await k.lines.next()) {
        if (r.value.startsWith('RESULT ')) out.push(JSON.parse(r.value.slice(7)));
      }
      return out;
    }),
  );
  for (const k of kids) k.child.stdin!.end('CLOSE\n');
  await Promise.all(
    kids.map(async (k) => {
      const code = await new Promise<number | null>((res) => (k.child.exitCode !== null ? res(k.child.exitCode) : k.child.once('exit', res)));
      if (code !== 0) throw new Error(`rank exited with ${code}`);
    }),
  );
  return perRank[0]!.map((row, i) => {
    // Per iteration, the collective took as long as its slowest rank.
    const times = row.times.map((_, it) => Math.max(...perRank.map((r) => r[i]!.times[it]!)));
    const t = median(times) / 1000;
    const bytes = row.sizeMiB * MiB;
    const cpuMs = perRank.reduce((a, r) => a + r[i]!.cpuMs, 0) / n;
    const mean = (k: 'sysMs' | 'faults' | 'volCs' | 'involCs' | 'reads' | 'writes' | 'copyMs') => perRank.reduce((a, r) => a + r[i]![k], 0) / n;
    const faults = mean('faults');
    const sentGB = (((2 * (n - 1)) / n) * bytes) / 1e9;
    return {
      transport: `${transport}${kernels === 'native' ? '' : '/js'}${thread === 'main' ? '' : '@thr'}${label}`, variant: label, kernels, thread, worldSize: n, sizeMiB: row.sizeMiB, codec: row.codec, medianMs: t * 1000, algbwMBps: bytes / t / 1e6,
      busbwMBps: ((2 * (n - 1)) / n) * (bytes / t) / 1e6, loopMaxMs: Math.max(...perRank.map((r) => r[i]!.loopMaxMs)), cpuMsPerRank: cpuMs, cpuSPerGB: cpuMs / 1000 / sentGB, pageFaultsPerRank: faults,
      sysShare: mean('sysMs') / cpuMs, volCsPerRank: mean('volCs'), involCsPerRank: mean('involCs'), readsPerRank: mean('reads'), writesPerRank: mean('writes'), copyMsPerRank: mean('copyMs'), timesMs: times,
    };
  });
}

interface GlooRow {
  world_size: number;
  size_mib: number;
  median_s: number;
  busbw_MBps: number;
}

/**
 * The Gloo anchor for the same worlds and sizes (../shared/anchors/allreduce_gloo.py); it waits for the
 * machine to be quiet (up to 15 min per world) as its README says. Its rows, or none with the reason.
 */
async function glooAnchor(worlds: number[], sizesMiB: number[], reps: number): Promise<{ rows: GlooRow[]; note: string }> {
  const script = fileURLToPath(new URL('../../shared/anchors/allreduce_gloo.py', import.meta.url));
  if (!existsSync(script)) return { rows: [], note: `not run: ${script} missing` };
  if (spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    return { rows: [], note: 'not run: /usr/bin/python3 cannot import torch (apt-get install python3-torch)' };
  }
  const out = join(tmpdir(), `ringtune-gloo-${process.pid}.json`);
  const args = [script, '--worlds', worlds.join(','), '--sizes-mib', sizesMiB.join(','), '--iters', String(reps), '--warmup', '2', '--repeats', '1', '--out', out];
  // --gloo-wait-s S: the anchor waits at most S seconds for a quiet machine before each attempt instead
  // of its own 15 minutes (cpumon.wait_quiet's max_wait, set from outside: ../shared is not ours to
  // edit). With six sessions sharing the machine a quiet spell may not come before a deadline; the
  // foreign CPU it measured is still printed with each world, so the ratio's conditions stay on record.
  const waitS = flag('gloo-wait-s', '');
  const python = waitS
    ? ['-c', [
      'import functools, runpy, sys',
      `sys.path.insert(0, ${JSON.stringify(dirname(script))})`,
      'import cpumon',
      `cpumon.wait_quiet = functools.partial(cpumon.wait_quiet, max_wait=${Number(waitS)})`,
      'sys.argv = sys.argv[1:]',
      `runpy.run_path(${JSON.stringify(script)}, run_name="__main__")`,
    ].join('\n'), ...args]
    : args;
  const run = spawnSync('/usr/bin/python3', python, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: Number(flag('gloo-timeout-s', '2400')) * 1000 });
  process.stdout.write(run.stdout ?? '');
  const contaminated = (run.stdout ?? '').split('\n').filter((l) => l.startsWith('[world')).join('; ');
  if (run.status === 0 && existsSync(out)) {
    const meta = JSON.parse(readFileSync(out, 'utf8')) as { torch_version: string; results: GlooRow[] };
    return { rows: meta.results, note: `torch ${meta.torch_version} gloo, same run (${args.slice(1).join(' ')}); ${contaminated}` };
  }
  // The script prints its table before writing JSON; when the JSON dump fails (it does when every attempt
  // of a world was discarded as contaminated) the printed rows are still the measurement.
  const rows: GlooRow[] = [];
  for (const line of (run.stdout ?? '').split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)MiB\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)/.exec(line);
    if (m) rows.push({ world_size: Number(m[1]), size_mib: Number(m[2]), median_s: Number(m[3]) / 1000, busbw_MBps: Number(m[4]) });
  }
  const why = `status ${run.status}${run.error ? `, ${run.error.message}` : ''}`;
  return rows.length > 0
    ? { rows, note: `gloo rows read from its printed table (its JSON was not written: ${why}); ${contaminated}` }
    : { rows: [], note: `failed (${why})` };
}

async function main(): Promise<void> {
  const worlds = flag('worlds', '2,4').split(',').map(Number);
  const sizesMiB = flag('sizes', '1,4,16,64').split(',').map(Number);
  const codecList = flag('codecs', 'fp32,bf16,fp16').split(',') as CodecName[];
  const reps = Number(flag('reps', '7'));
  const passthrough = [
    '--message-kib', flag('message-kib', '1024'), '--inflight', flag('inflight', '4'),
    ...(flag('large-message-kib', '') ? ['--large-message-kib', flag('large-message-kib', '')] : []), '--placed', flag('placed', 'on'),
    '--shared-buf', flag('shared-buf', 'off'),
  ];
  // Ring workers run with RING_PROCESS_ENV (glibc keeps freed memory for reuse) unless --malloc default.
  const malloc = flag('malloc', 'tuned');
  const env = malloc === 'tuned' ? { ...process.env, ...RING_PROCESS_ENV } : process.env;
  const transportFlag = flag('transport', 'all');
  const transports = (transportFlag === 'all' || transportFlag === 'both' ? [...RING_TRANSPORTS] : transportFlag.split(',')) as RingTransportName[];
  if (!transports.every((t) => (RING_TRANSPORTS as readonly string[]).includes(t))) {
    throw new Error(`--transport: ${RING_TRANSPORTS.join(' | ')}, a comma list or all, got ${transportFlag}`);
  }
  const kernelsFlag = flag('kernels', 'native');
  const kernelSets = kernelsFlag.split(',') as Kernels[];
  if (!kernelSets.every((k) => k === 'native' || k === 'js')) throw new Error(`--kernels: native | js | native,js, got ${kernelsFlag}`);
  const threadFlag = flag('ring-thread', 'main');
  const threads = threadFlag.split(',') as Variant['thread'][];
  if (!threads.every((x) => x === 'main' || x === 'worker')) throw new Error(`--ring-thread: main | worker | main,worker, got ${threadFlag}`);
  // --ab name=v1,v2: an A/B axis over any worker flag (message-kib, inflight, ...); --alternate K runs the
  // whole variant list K times in turn per world (A B A B), so each pair meets the same load.
  // --connections 1,2 is the --ab axis connections=1,2 (a single value goes to every rank as is).
  const connectionsFlag = flag('connections', '1');
  if (connectionsFlag.includes(',') && flag('ab', '')) throw new Error('--connections a,b is an A/B axis: use it or --ab, not both');
  const ab = connectionsFlag.includes(',') ? `connections=${connectionsFlag}` : flag('ab', '');
  if (!connectionsFlag.includes(',')) passthrough.push('--connections', connectionsFlag);
  const abAxis = ab ? ab.slice(ab.indexOf('=') + 1).split(',').map((v) => ({ extra: [`--${ab.slice(0, ab.indexOf('='))}`, v], label: ` ${ab.slice(0, ab.indexOf('='))}=${v}` })) : [{ extra: [], label: '' }];
  const once: Variant[] = kernelSets.flatMap((kernels) => threads.flatMap((thread) => abAxis.map((a) => ({ kernels, thread, ...a }))));
  const variants = Array.from({ length: Number(flag('alternate', '1')) }, () => once).flat();
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  const tcpReps = Math.min(reps, 7);
  const tcpTimes = await tcpCeiling(tcpReps);
  const tcpMBps = (64 * MiB) / (median(tcpTimes) / 1000) / 1e6;
  const rows: Awaited<ReturnType<typeof runWorld>> = [];
  // Per world size, each transport's ring in turn (not at the same time: 2 cores).
  for (const n of worlds) {
    for (const t of transports) {
      for (const v of variants) rows.push(...(await runWorld(n, t, v, { sizesMiB, codecs: codecList, warmup: 2, reps }, passthrough, env)));
    }
  }
  const tcpAfter = (64 * MiB) / (median(await tcpCeiling(tcpReps)) / 1000) / 1e6;
  const fp32Sizes = codecList.includes('fp32') ? sizesMiB : [];
  const gloo = flag('gloo', 'on') === 'on' && fp32Sizes.length > 0 ? await glooAnchor(worlds, fp32Sizes, reps) : { rows: [], note: 'off' };
  const glooBusbw = (n: number, mib: number) => gloo.rows.find((g) => g.world_size === n && g.size_mib === mib)?.busbw_MBps;

  const pad = (s: string | number, w: number) => String(s).padStart(w);
  console.log(`ring kernels (fp32 add, bf16): ${kernelsFlag}; native here: ${ringKernelsStatus()}`);
  console.log(`ring workers: ${malloc} malloc, ${passthrough[1]} KiB messages (growing to ${flag('large-message-kib', '4096')} KiB for large collectives), ${passthrough[3]} in flight per link, placed copies ${flag('placed', 'on')}`);
  console.log(`raw TCP, 1 stream, 64 MiB: ${tcpMBps.toFixed(0)} MB/s before, ${tcpAfter.toFixed(0)} MB/s after (median of ${tcpReps})`);
  console.log(`load average at start: ${load0}; at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 cores)`);
  console.log(`Gloo anchor: ${gloo.note}`);
  console.log(
    `${pad('transport', 12 + Math.max(0, ...abAxis.map((a) => a.label.length)))} ${pad('N', 2)} ${pad('size', 7)} ${pad('codec', 5)} ${pad('median ms', 10)} ${pad('algbw MB/s', 11)} ${pad('busbw MB/s', 11)} ` +
      `${pad('busbw/TCP', 9)} ${pad('Gloo MB/s', 9)} ${pad('x Gloo', 6)} ${pad('cpu ms/rank', 11)} ${pad('cpu s/GB', 8)} ${pad('faults/rank', 11)} ${pad('loop max ms', 11)} ${pad('sys %', 5)} ${pad('vol cs', 6)} ${pad('invol cs', 8)} ${pad('reads', 5)} ${pad('writes', 6)} ${pad('copy ms', 7)}`,
  );
  const ceiling = Math.max(tcpMBps, tcpAfter);
  for (const r of rows) {
    const g = r.codec === 'fp32' ? glooBusbw(r.worldSize, r.sizeMiB) : undefined;
    console.log(
      `${pad(r.transport, 12 + Math.max(0, ...abAxis.map((a) => a.label.length)))} ${pad(r.worldSize, 2)} ${pad(`${r.sizeMiB} MiB`, 7)} ${pad(r.codec, 5)} ${pad(r.medianMs.toFixed(1), 10)} ` +
        `${pad(r.algbwMBps.toFixed(0), 11)} ${pad(r.busbwMBps.toFixed(0), 11)} ${pad((r.busbwMBps / ceiling).toFixed(2), 9)} ` +
        `${pad(g ? g.toFixed(0) : '-', 9)} ${pad(g ? (r.busbwMBps / g).toFixed(2) : '-', 6)} ${pad(r.cpuMsPerRank.toFixed(0), 11)} ${pad(r.cpuSPerGB.toFixed(2), 8)} ${pad(r.pageFaultsPerRank.toFixed(0), 11)} ${pad(r.loopMaxMs.toFixed(1), 11)} ` +
        `${pad((100 * r.sysShare).toFixed(0), 5)} ${pad(r.volCsPerRank.toFixed(0), 6)} ${pad(r.involCsPerRank.toFixed(0), 8)} ${pad(r.readsPerRank.toFixed(0), 5)} ${pad(r.writesPerRank.toFixed(0), 6)} ${pad(r.copyMsPerRank.toFixed(1), 7)}`,
    );
  }
  if (ab) {
    // The A/B summary: per variant and case, mean over the alternations (cpu s/GB is the less noisy one).
    console.log(`A/B ${ab}, ${flag('alternate', '1')} alternation(s): mean cpu s/GB | mean busbw MB/s | mean sys % per variant`);
    const cases = [...new Set(rows.map((r) => `${r.worldSize} ${r.sizeMiB} ${r.codec}`))];
    for (const c of cases) {
      const cells = abAxis.map((a) => {
        const rs = rows.filter((r) => `${r.worldSize} ${r.sizeMiB} ${r.codec}` === c && r.variant === a.label);
        const mean = (f: (r: (typeof rs)[number]) => number) => rs.reduce((x, r) => x + f(r), 0) / rs.length;
        return `${a.label.trim()}: ${mean((r) => r.cpuSPerGB).toFixed(3)} | ${mean((r) => r.busbwMBps).toFixed(0)} | ${mean((r) => 100 * r.sysShare).toFixed(0)}`;
      });
      console.log(`  N=${c.replace(' ', ' ').replace(/ (\d+) /, ' $1 MiB ')}  ${cells.join('   ')}`);
    }
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const out = {
    when: new Date().toISOString(), command: process.argv.slice(2).join(' '), loadavg: loadavg(), transports, kernels: kernelSets, ringThreads: threads, reps, warmup: 2, malloc,
    messageKiB: Number(passthrough[1]), inflight: Number(passthrough[3]), tcpMBps: { before: tcpMBps, after: tcpAfter }, rows, gloo,
  };
  writeFileSync(`${dir}allreduce.json`, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${dir}allreduce.json`);
}

if (process.argv.includes('--worker')) await worker();
else if (process.argv.includes('--tcp-sink')) await tcpSink();
else await main();
