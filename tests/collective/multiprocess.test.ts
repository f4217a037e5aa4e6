// The ring across separate OS processes (tests/collective/fixtures/ring-rank.ts), including a rank
// killed with SIGKILL and a rank frozen with SIGSTOP in the middle of a collective.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RankConfig } from './fixtures/ring-rank.ts';
import { TRANSPORTS } from './helpers.ts';

const fixture = fileURLToPath(new URL('./fixtures/ring-rank.ts', import.meta.url));

interface Rank {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line starting with `prefix` (already seen or future), with its arrival time. */
  waitFor(prefix: string, timeoutMs: number): Promise<{ line: string; atMs: number }>;
  exited: Promise<number | null>;
}

function spawnRank(cfg: RankConfig): Rank {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const times: number[] = [];
  const waiters: { prefix: string; resolve: (v: { line: string; atMs: number }) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    times.push(performance.now());
    for (const w of waiters.filter((w) => line.startsWith(w.prefix))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve({ line, atMs: performance.now() });
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, lines, exited,
    waitFor(prefix, timeoutMs) {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return Promise.resolve({ line: lines[i]!, atMs: times[i]! });
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`rank ${cfg.rank}: no "${prefix}" within ${timeoutMs} ms; saw ${lines.slice(-3).join(' | ')}`)), timeoutMs);
        waiters.push({ prefix, resolve: (v) => (clearTimeout(timer), resolve(v)) });
      });
    },
  };
}

async function startRing(n: number, cfg: Omit<RankConfig, 'rank' | 'worldSize'>): Promise<Rank[]> {
  const ranks = Array.from({ length: n }, (_, rank) => spawnRank({ ...cfg, rank, worldSize: n }));
  // A rank that never reports its address must not leave the others running: the file would never end.
  const addrs = await Promise.all(ranks.map(async (r) => (await r.waitFor('ADDR ', 30_000)).line.slice(5))).catch((e: unknown) => {
    for (const r of ranks) r.child.kill('SIGKILL');
    throw e;
  });
  for (const r of ranks) r.child.stdin!.write(`${JSON.stringify(addrs)}\n`);
  return ranks;
}

const plan = [0, 1, 7, 1000, 1_000_003].flatMap((length) => (['fp32', 'bf16'] as const).map((codec) => ({ length, codec, op: 'sum' as const })));

for (const transport of TRANSPORTS) {
  for (const n of [2, 4]) {
    test(`[${transport}] ${n} processes: lengths 0..1_000_003, fp32 and bf16, exact / within bound, bit-identical across processes`, async () => {
      const ranks = await startRing(n, { jobId: 'mp', token: 't0k', transport, plan, repeat: 1, timeoutMs: 60_000, messageBytes: 256 * 1024, verify: true });
      const codes = await Promise.all(ranks.map((r) => r.exited));
      assert.deepEqual(codes, ranks.map(() => 0));
      for (const r of ranks) assert.ok(!r.lines.some((l) => l.startsWith('ERROR')), r.lines.find((l) => l.startsWith('ERROR')));
      const done = ranks.map((r) => r.lines.filter((l) => l.startsWith('DONE ')));
      assert.equal(done[0]!.length, plan.length);
      for (const d of done) assert.deepEqual(d, done[0], 'every process holds the same bytes after every step');
    });
  }

  for (const [signal, n, victim] of [['SIGKILL', 4, 2], ['SIGSTOP', 3, 1]] as const) {
    test(`[${transport}] ${signal} of rank ${victim} mid-collective: every other rank fails naming rank ${victim} within the timeout`, async (t) => {
      const timeoutMs = 4000;
      const big = [{ length: 4 << 20, codec: 'fp32' as const, op: 'sum' as const }];
      const ranks = await startRing(n, { jobId: 'mp-kill', token: 't0k', transport, plan: big, repeat: 1000, timeoutMs, verify: false });
      try {
        await ranks[victim]!.waitFor('START 3', 60_000);
        // Every survivor is inside step 3 or about to be: it needs the victim's data to finish it.
        ranks[victim]!.child.kill(signal);
        const killedAt = performance.now();
        for (const [r, rank] of ranks.entries()) {
          if (r === victim) continue;
          const { line, atMs } = await rank.waitFor('ERROR ', timeoutMs + 5000);
          const err = JSON.parse(line.slice(6)) as { name: string; rank: number; message: string };
          assert.ok(['PeerLostError', 'CollectiveTimeoutError'].includes(err.name), line);
          if (signal === 'SIGKILL') assert.equal(err.name, 'PeerLostError', line);
          assert.equal(err.rank, victim, line);
          assert.match(err.message, new RegExp(`rank ${victim}`));
          // A collective started at most timeoutMs before it fails; allow scheduling slack on 2 shared cores.
          assert.ok(atMs - killedAt < timeoutMs + 1500, `rank ${r} failed ${atMs - killedAt} ms after the ${signal}`);
          t.diagnostic(`rank ${r}: ${err.name} ${Math.round(atMs - killedAt)} ms after ${signal}: ${err.message.slice(0, 160)}`);
        }
      } finally {
        ranks[victim]!.child.kill('SIGKILL');
        for (const r of ranks) r.child.stdin!.end();
        await Promise.all(ranks.map((r) => r.exited));
      }
    });
  }
}
