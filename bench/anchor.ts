/**
 * Side-by-side measurement helpers for the benches: run one child process and record its peak RSS,
 * and run the PyTorch anchor (../shared/anchors/train_torch.py, see its README) best-configured.
 *
 * Peak RSS: GNU time's %M (the kernel's ru_maxrss of the waited child, in KiB) when /usr/bin/time
 * exists; otherwise VmHWM from /proc/<pid>/status polled every 100 ms (a high-water mark, so polling
 * only misses growth in the last interval before exit).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Measured {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last ~40 lines the child wrote to stderr (it is also echoed live). */
  stderrTail: string;
  wallS: number;
  peakRssKiB?: number;
  rssMethod: 'gnu-time' | 'proc-vmhwm' | 'none';
  timedOut: boolean;
}

const TIME_BIN = '/usr/bin/time';
let runs = 0;

/** Runs `cmd args` in its own process group; a timeout kills that group (only what we started). */
export async function runMeasured(
  cmd: string,
  args: string[],
  o: { env: NodeJS.ProcessEnv; timeoutMs: number; echo?: (chunk: string) => void },
): Promise<Measured> {
  const useTime = existsSync(TIME_BIN);
  const rssFile = join(tmpdir(), `ringtune-bench-rss-${process.pid}-${runs++}.txt`);
  const [file, argv] = useTime ? [TIME_BIN, ['-f', '%M', '-o', rssFile, cmd, ...args]] : [cmd, args];
  const t0 = performance.now();
  const child = spawn(file, argv, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let tail: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    o.echo?.(s);
    tail = [...tail, ...s.split('\n')].slice(-40);
  });
  let hwm = 0;
  const poll = useTime
    ? undefined
    : setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) hwm = Math.max(hwm, Number(m[1]));
        } catch {
          /* exited between polls */
        }
      }, 100);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, o.timeoutMs);
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => resolve([code, sig]));
  });
  clearTimeout(timer);
  if (poll) clearInterval(poll);
  const wallS = (performance.now() - t0) / 1000;
  let peakRssKiB: number | undefined;
  if (useTime) {
    // GNU time writes "Command exited with non-zero status N" / "Command terminated by signal N"
    // before the format line when the child fails.
    const text = await readFile(rssFile, 'utf8').catch(() => '');
    await rm(rssFile, { force: true });
    const last = text.trim().split('\n').pop() ?? '';
    if (/^\d+$/.test(last)) peakRssKiB = Number(last);
  } else if (hwm > 0) {
    peakRssKiB = hwm;
  }
  return {
    status, signal, stdout, stderrTail: tail.join('\n').trim(), wallS, peakRssKiB, timedOut,
    rssMethod: peakRssKiB === undefined ? 'none' : useTime ? 'gnu-time' : 'proc-vmhwm',
  };
}

/** The last `RESULT {json}` line of a child's stdout. */
export function parseResult<T>(stdout: string): T | undefined {
  const line = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).pop();
  return line ? (JSON.parse(line.slice('RESULT '.length)) as T) : undefined;
}

// ------------------------------------------------------------------------------------------------
// PyTorch anchor

export const PYTHON = '/usr/bin/python3';
export const ANCHOR_SCRIPT = new URL('../../shared/anchors/train_torch.py', import.meta.url).pathname;
export const MALLOC_RETAIN = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184';

export function anchorDeps(): string {
  return process.env.ANCHOR_DEPS ?? join(homedir(), '.cache', 'ringtune-anchors', 'deps');
}

/** The OpenMP OpenBLAS build train_torch.py's `--blas openblas-omp` expects on LD_LIBRARY_PATH. */
export function openblasOmpDir(): string {
  return join(anchorDeps(), 'libopenblas0-openmp', 'usr', 'lib', 'x86_64-linux-gnu', 'openblas-openmp');
}

/** Why the anchor cannot run here, or undefined when it can (torch importable + OpenBLAS build + script). */
export function anchorUnavailable(): string | undefined {
  if (!existsSync(ANCHOR_SCRIPT)) return `${ANCHOR_SCRIPT} not found`;
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const p = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  if (p.status !== 0) return `${PYTHON} cannot import torch (run ../shared/anchors/setup.sh)`;
  // Without it torch falls back to the reference BLAS, ~10x slower: a ratio against that would flatter us.
  if (!existsSync(openblasOmpDir())) return `OpenMP OpenBLAS build missing in ${anchorDeps()} (run ../shared/anchors/setup.sh)`;
  return undefined;
}

/** What train_torch.py --one --mode single prints (the fields we use). */
export interface TorchResult {
  config: string;
  threads: number;
  n_params: number;
  steps: number;
  warmup: number;
  median_step_s: number;
  median_fwd_bwd_s: number;
  median_adamw_step_s: number;
  tokens_per_s: number;
  loss_first: number;
  loss_last: number;
  median_minor_page_faults_per_step: number;
  blas_lib: string | null;
  torch_num_threads: number;
}

export interface AnchorRun {
  result?: TorchResult;
  peakRssKiB?: number;
  wallS: number;
  command: string;
  error?: string;
}

/** One best-configured anchor measurement (settings from shared/anchors/README.md), one process. */
export async function runTorchAnchor(
  config: string,
  o: { threads: number; steps: number; warmup: number; timeoutMs: number; echo?: (s: string) => void },
): Promise<AnchorRun> {
  const t = String(o.threads);
  const envPart = {
    OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t,
    GLIBC_TUNABLES: MALLOC_RETAIN, LD_LIBRARY_PATH: openblasOmpDir(),
  };
  const args = [ANCHOR_SCRIPT, '--one', '--mode', 'single', '--config', config, '--blas', 'openblas-omp',
    '--threads', t, '--steps', String(o.steps), '--warmup', String(o.warmup)];
  const command = `${Object.entries(envPart).map(([k, v]) => `${k}=${v}`).join(' ')} ${PYTHON} ${args.join(' ')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, ...envPart };
  const m = await runMeasured(PYTHON, args, { env, timeoutMs: o.timeoutMs, echo: o.echo });
  const result = m.status === 0 ? parseResult<TorchResult>(m.stdout) : undefined;
  const error = result ? undefined : failure(m);
  return { result, peakRssKiB: m.peakRssKiB, wallS: m.wallS, command, error };
}

export function failure(m: Measured): string {
  if (m.timedOut) return `timed out after ${m.wallS.toFixed(0)} s`;
  const why = m.signal ? `killed by ${m.signal}` : m.status === 0 ? 'printed no RESULT line' : `exit status ${m.status}`;
  // Node ends an uncaught exception with its version and a stack; the useful line is the error itself.
  const lines = m.stderrTail.split('\n').map((l) => l.trim()).filter((l) => l && !/^Node\.js v/.test(l) && !/^at /.test(l) && l !== '^');
  const line = lines.filter((l) => /error|abort|killed|out of memory/i.test(l)).pop() ?? lines.pop();
  return line ? `${why}: ${line.slice(0, 200)}` : why;
}
