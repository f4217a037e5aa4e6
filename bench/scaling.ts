/**
 * npm run bench:scaling — data-parallel scaling on this machine: config A (GPT-2 shape, vocab 4096,
 * d 128, 4 heads, 4 layers, seq 128, micro-batch 8 per worker) trained by a local cluster of 1 and
 * 2 worker processes (real NATS, real gRPC ring). Aggregate tokens/s from the wall-clock time between
 * completed steps (median after warm-up) and scaling efficiency = tokens/s(N) / (N * tokens/s(1)).
 * Reference: PyTorch DDP / Gloo reaches ~96% here. Writes bench/results/scaling.json.
 * Options: --steps N (default 14), --workers 1,2, --reps R (default 3; configurations alternate so
 * machine noise hits all of them alike; the median run per configuration is reported), --method
 * full,lora (default full; lora = r 8 on c_attn, PEFT's GPT-2 default: the all-reduce carries the
 * adapter only, and the table's all-reduce bytes per step show it).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { runLocalCluster } from '../src/coordinator/local.ts';
import { initBackend } from '../src/model/backend.ts';
import { createModelDir } from '../src/model/create.ts';
import { readDefaultCorpus } from '../src/model/tokenizer-build.ts';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '14' }, workers: { type: 'string', default: '1,2' }, reps: { type: 'string', default: '3' }, method: { type: 'string', default: 'full' } } });
const methods = args.method.split(',') as Array<'full' | 'lora'>;
const steps = Number(args.steps);
const WARMUP = 4;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await initBackend(undefined, () => {});
const dir = await mkdtemp(join(tmpdir(), 'ringtune-scaling-'));
try {
  const model = join(dir, 'model');
  await createModelDir({ family: 'gpt2', preset: 'small', out: model, maxPositions: 129, seed: 1 });
  const text = readDefaultCorpus().replace(/\s+/g, ' ');
  const lines = [];
  for (let i = 0; i + 2000 <= text.length; i += 1000) lines.push(JSON.stringify({ text: text.slice(i, i + 2000) }));
  await writeFile(join(dir, 'train.jsonl'), lines.join('\n') + '\n');
  const runs: Array<{ method: string; reduceBytes: number; workers: number; steps: number; tokensPerStep: number; stepMs: number; tokensPerS: number; computeMs: number; allreduceMs: number }> = [];
  for (let rep = 0; rep < Number(args.reps); rep++) for (const method of methods) for (const workers of args.workers.split(',').map(Number)) {
    const jobFile = join(dir, `scale${workers}-${method}.yaml`);
    const out = join(dir, `out${workers}-${method}`);
    await writeFile(jobFile, stringify({
      name: `scale${workers}-${method}`, model, output: out, method, ...(method === 'lora' ? { lora: { r: 8, alpha: 16, target_modules: ['c_attn'] } } : {}),
      data: { train: join(dir, 'train.jsonl'), format: 'text', max_seq_len: 129, packing: true, eval_fraction: 0 },
      training: { max_steps: steps, global_batch: 8 * workers, micro_batch: 8, lr: 1e-3, seed: 1 },
      cluster: { workers, hash_every_n_steps: 0, heartbeat_timeout_ms: 30_000 },
    }));
    console.error(`  run ${rep + 1}: ${method}, ${workers} worker(s), ${steps} steps ...`);
    const code = await runLocalCluster({ jobFile, log: () => {}, echo: false });
    if (code !== 0) throw new Error(`local run with ${workers} workers failed (${code})`);
    const hist = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l)).filter((h) => h.type === 'train');
    const deltas = hist.slice(WARMUP).map((h, i) => h.time_ms - hist[WARMUP - 1 + i].time_ms);
    const stepMs = median(deltas);
    const tokensPerStep = median(hist.map((h) => h.tokens)); // the last step of an epoch may be short
    await rm(out, { recursive: true, force: true });
    runs.push({
      method, reduceBytes: median(hist.map((h) => h.reduce_bytes ?? 0)), workers, steps, tokensPerStep, stepMs, tokensPerS: Math.round((tokensPerStep / stepMs) * 1000),
      computeMs: median(hist.slice(WARMUP).map((h) => h.compute_ms)),
      allreduceMs: median(hist.slice(WARMUP).map((h) => h.reduce_ms_min)),
    });
  }
  const rows = methods.flatMap((method) => args.workers.split(',').map(Number).map((w) => {
    const mine = runs.filter((r) => r.workers === w && r.method === method).sort((a, b) => a.tokensPerS - b.tokensPerS);
    return { ...mine[Math.floor(mine.length / 2)], runsTokensPerS: mine.map((r) => r.tokensPerS) };
  }));
  const table = rows.map((r) => {
    const one = rows.find((x) => x.workers === 1 && x.method === r.method);
    return { ...r, efficiency: one ? +(r.tokensPerS / (r.workers * one.tokensPerS)).toFixed(3) : null };
  });
  console.log('\nbench:scaling — config A (GPT-2 shape, 1.33M params), micro-batch 8 x seq 128 per worker, median step after warm-up\n');
  console.log('| method | workers | tokens/step | step ms | slowest fwd+bwd ms | all-reduce ms (fastest rank) | all-reduce bytes sent per rank per step | tokens/s (median run) | all runs | scaling efficiency | PyTorch DDP reference |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of table) console.log(`| ${r.method} | ${r.workers} | ${r.tokensPerStep} | ${r.stepMs} | ${r.computeMs} | ${r.allreduceMs} | ${r.reduceBytes} | ${r.tokensPerS} | ${r.runsTokensPerS.join(', ')} | ${r.efficiency ?? '-'} | ${r.workers === 2 && r.method === 'full' ? '0.96' : '-'} |`);
  await mkdir('bench/results', { recursive: true });
  await writeFile('bench/results/scaling.json', JSON.stringify({ bench: 'scaling', date: new Date().toISOString(), rows: table }, null, 2) + '\n');
  console.log('\nwrote bench/results/scaling.json');
} finally {
  await rm(dir, { recursive: true, force: true });
}
