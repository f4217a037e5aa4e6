/**
 * npm run bench:data — the prepared-dataset cache on a generated corpus:
 *   first-time preparation  MB/s and records/s, peak RSS, for each corpus size (RSS should not grow
 *                           with the size: preparation streams)
 *   cached start-up         a fresh process: compile the job, load the tokenizer, key the inputs, open
 *                           the cache and read one global batch (64 examples), in ms; and its peak RSS
 *   in-memory baseline      today's prepareData on the smallest size, for comparison (--baseline-mb)
 * The corpus is JSON Lines of `text` records (~1 KB: runs of lines of assets/corpus/general.txt, real
 * English), tokenised by a byte-level BPE of --vocab tokens built from the same corpus (the shape of
 * GPT-2's tokenizer), format text, max_seq_len 1024. It is generated into a temp dir and deleted after.
 * Every measurement runs in its own child process (its peak RSS is its own; bench/anchor.ts runMeasured).
 *
 * First-time preparation runs once per engine x thread count, so the fast byte-level BPE encoder and
 * tokenizers.js are measured side by side in the same run (src/model/tokenizer.ts, engines). Besides
 * wall-clock MB/s it reports MB per CPU-second of the whole process (all threads): on a shared, loaded
 * machine the wall figure says how busy the neighbours were, the CPU figure what the code costs.
 *
 * Options:
 *   --mb 100,300          corpus sizes in MB (default 100,300)
 *   --threads 1,2         tokenising thread counts (default: 1 and all cores)
 *   --engine auto,library tokenizer engines for first-time preparation (default both; 'auto' is the
 *                         fast encoder where the tokenizer allows it, as in production)
 *   --baseline-mb N       size for the in-memory baseline (default 20; 0 skips it)
 *   --vocab N             BPE vocabulary (default 8192)
 *   --out FILE            JSON output (default bench/results/data.json)
 * Internal: --child prepare|open|baseline --dir DIR [--engine E --threads N] runs one measurement and
 * prints `RESULT {json}`.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileJob, type CompiledJob } from '../src/config/compile.ts';
import { prepareData } from '../src/data/dataset.ts';
import { openOrBuildCache } from '../src/data/prepared-cache.ts';
import { buildFamilyTokenizer, readDefaultCorpus, writeTokenizerFiles } from '../src/model/tokenizer-build.ts';
import { Tokenizer, TOKENIZER_ENGINES, type TokenizerEngine } from '../src/model/tokenizer.ts';
import { BatchPlan } from '../src/train/batch-plan.ts';
import { Rng } from '../src/util/rng.ts';
import { failure, parseResult, runMeasured } from './anchor.ts';

const { values: args } = parseArgs({
  options: {
    mb: { type: 'string', default: '100,300' },
    threads: { type: 'string' },
    engine: { type: 'string', default: 'auto,library' },
    'baseline-mb': { type: 'string', default: '20' },
    vocab: { type: 'string', default: '8192' },
    out: { type: 'string' },
    child: { type: 'string' },
    dir: { type: 'string' },
    data: { type: 'string' },
  },
});

const jobFor = (dir: string, data: string): CompiledJob => compileJob({
  model: join(dir, 'model'), data: { train: data, format: 'text', max_seq_len: 1024, eval_fraction: 0.001 },
  training: { max_steps: 1, global_batch: 64, micro_batch: 8, seed: 1 },
}, join(dir, 'job.yaml'));

/** One measurement in this (child) process. */
async function child(kind: string, dir: string, data: string): Promise<void> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const job = jobFor(dir, data);
  const engine = args.engine as TokenizerEngine;
  if (!TOKENIZER_ENGINES.includes(engine)) throw new Error(`--engine: expected one of ${TOKENIZER_ENGINES.join(', ')}, got ${engine}`);
  const tok = await Tokenizer.fromDir(job.modelDir, { engine });
  const env = { RINGTUNE_CACHE: join(dir, 'cache') };
  const bytes = (await stat(data)).size;
  if (kind === 'baseline') {
    const d = await prepareData(job, tok);
    const s = (performance.now() - t0) / 1000;
    console.log(`RESULT ${JSON.stringify({ seconds: s, mbPerS: bytes / 1e6 / s, records: d.train.length + d.eval.length + d.skipped.length, recordsPerS: (d.train.length + d.eval.length) / s })}`);
    return;
  }
  const threads = args.threads === undefined ? undefined : Number(args.threads);
  const c = await openOrBuildCache(job, tok, undefined, { env, threads, force: kind === 'prepare' });
  // A trainer's first step: the plan's first global batch, read from the cache.
  const plan = new BatchPlan(c.train.length, 64, 1, { epochs: 1 });
  const batch = plan.stepExamples(0).map((i) => c.train.at(i)!);
  const s = (performance.now() - t0) / 1000;
  // CPU seconds of the whole process, all threads (getrusage): a figure the machine's load barely moves.
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (batch.length !== 64) throw new Error('short batch');
  const st = c.stats;
  console.log(`RESULT ${JSON.stringify(kind === 'prepare'
    ? { seconds: s, mbPerS: bytes / 1e6 / st.seconds, recordsPerS: st.records / st.seconds, records: st.records, tokens: st.tokens, truncated: st.truncated, threads: st.threads, buildSeconds: st.seconds, engine: tok.engine, cpuSeconds, mbPerCpuS: bytes / 1e6 / cpuSeconds }
    : { seconds: s, built: c.built, examples: c.train.length })}`);
}

/** ~`mb` MB of {"text": ...} lines, each a run of 4-20 consecutive lines of the shipped corpus. */
async function generate(file: string, mb: number): Promise<number> {
  const lines = readDefaultCorpus().split('\n').filter((l) => l.trim());
  const rng = new Rng(mb);
  const out = createWriteStream(file);
  let bytes = 0;
  let records = 0;
  while (bytes < mb * 1e6) {
    const at = rng.int(lines.length);
    const line = JSON.stringify({ text: lines.slice(at, at + 4 + rng.int(17)).join('\n') }) + '\n';
    bytes += Buffer.byteLength(line);
    records++;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error) => (err ? j(err) : r())));
  return records;
}

interface Row { what: string; mb: number; engine?: string; seconds?: number; mbPerS?: number; recordsPerS?: number; cpuSeconds?: number; mbPerCpuS?: number; peakRssMiB?: number; wallS: number; threads?: number; error?: string }

async function measure(kind: string, dir: string, data: string, mb: number, engine: string, threads?: number): Promise<Row> {
  const self = fileURLToPath(import.meta.url);
  const m = await runMeasured(process.execPath, ['--import', 'tsx', self, '--child', kind, '--dir', dir, '--data', data, '--engine', engine, ...(threads === undefined ? [] : ['--threads', String(threads)])],
    { env: process.env, timeoutMs: 60 * 60_000 });
  const r = m.status === 0 ? parseResult<{ seconds: number; mbPerS?: number; recordsPerS?: number; threads?: number; engine?: string; cpuSeconds?: number; mbPerCpuS?: number }>(m.stdout) : undefined;
  const what = { prepare: 'first-time preparation (cache)', open: 'cached start-up', baseline: 'in-memory prepareData (before)' }[kind]!;
  return { what, mb, engine: r?.engine ?? engine, seconds: r?.seconds, mbPerS: r?.mbPerS, recordsPerS: r?.recordsPerS, cpuSeconds: r?.cpuSeconds, mbPerCpuS: r?.mbPerCpuS, threads: r?.threads, peakRssMiB: m.peakRssKiB && m.peakRssKiB / 1024, wallS: m.wallS, error: r ? undefined : failure(m) };
}

async function main(): Promise<void> {
  if (args.child) return child(args.child, args.dir!, args.data!);
  const loadBefore = loadavg();
  const sizes = args.mb.split(',').map(Number);
  const engines = args.engine.split(',');
  const threadCounts = [...new Set((args.threads ?? `1,${availableParallelism()}`).split(',').map(Number))];
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-bench-data-'));
  const rows: Row[] = [];
  try {
    await writeTokenizerFiles(join(dir, 'model'), buildFamilyTokenizer('gpt2', Number(args.vocab)));
    await writeFile(join(dir, 'job.yaml'), '# written by bench/data.ts\n');
    for (const mb of sizes) {
      const data = join(dir, `corpus-${mb}.jsonl`);
      console.error(`[bench:data] generating ${mb} MB ...`);
      await generate(data, mb);
      for (const engine of engines) {
        for (const threads of threadCounts) {
          console.error(`[bench:data] prepare ${mb} MB, engine ${engine}, ${threads} threads (load ${loadavg()[0].toFixed(1)}) ...`);
          rows.push(await measure('prepare', dir, data, mb, engine, threads));
        }
      }
      console.error(`[bench:data] open ${mb} MB ...`);
      rows.push(await measure('open', dir, data, mb, engines[0]));
      await rm(join(dir, 'cache'), { recursive: true, force: true });
      await rm(data);
    }
    const base = Number(args['baseline-mb']);
    if (base > 0) {
      const data = join(dir, `corpus-${base}.jsonl`);
      await generate(data, base);
      console.error(`[bench:data] in-memory baseline ${base} MB ...`);
      rows.push(await measure('baseline', dir, data, base, engines[0]));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const f = (x: number | undefined, d = 1) => (x === undefined ? '-' : x.toFixed(d));
  console.log(`\nload average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} (start) -> ${loadavg().map((x) => x.toFixed(2)).join(' ')} (end), ${availableParallelism()} cores`);
  console.log(`\n| what | corpus MB | engine | threads | MB/s | records/s | MB per CPU-s | time s (in process) | wall s (process) | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|`);
  for (const r of rows) {
    console.log(`| ${r.what} | ${r.mb} | ${r.engine ?? '-'} | ${r.threads ?? '-'} | ${f(r.mbPerS, 2)} | ${f(r.recordsPerS, 0)} | ${f(r.mbPerCpuS, 2)} | ${r.error ? `failed: ${r.error}` : f(r.seconds, 2)} | ${f(r.wallS, 2)} | ${f(r.peakRssMiB, 0)} |`);
  }
  const outPath = args.out ? resolve(args.out) : fileURLToPath(new URL('./results/data.json', import.meta.url));
  await mkdir(dirname(outPath), { recursive: true });
  const out = {
    date: new Date().toISOString(), command: `npm run bench:data -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, loadAverageStart: loadBefore, loadAverageEnd: loadavg() }, corpus: 'JSONL text records (~1 KB) from assets/corpus/general.txt', tokenizer: `byte-level BPE, vocab ${args.vocab}`, rows,
  };
  await writeFile(outPath, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nwrote ${outPath}`);
}

await main();
