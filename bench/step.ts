/**
 * npm run bench:step — one training step (forward + cross-entropy + backward + AdamW) in tokens/s,
 * side by side with the PyTorch anchor in the same run.
 *   A: vocab 4096, d 128, 4 heads, 4 layers, batch 8 x seq 128
 *   B: vocab 8192, d 256, 4 heads, 6 layers, batch 8 x seq 128
 *   S: GPT-2 small (vocab 50257, d 768, 12 heads, 12 layers), batch 4 x seq 128
 * each in GPT-2 and Llama shapes (Llama: same d/heads/layers, kv heads = heads, SwiGLU 8/3 d).
 *
 * Every (family, config) runs in its own child process, so its peak RSS is its own, and the backend
 * is initialised fresh. For each config the GPT-2 row is followed by the PyTorch anchor
 * (../shared/anchors/train_torch.py, best-configured as its README says: OpenMP OpenBLAS, retaining
 * malloc, the same --threads) when `/usr/bin/python3 -c 'import torch'` works; the ratio is
 * ringtune tokens/s / PyTorch tokens/s. The anchor is a GPT-2-style model (pre-LN, tanh GELU,
 * biases, tied head, positions = seq), the same shape as our gpt2 rows (the parameter counts are
 * checked to be equal); Llama rows have no anchor and no ratio.
 *
 * Options:
 *   --configs A,B,S       configs to run (default A,B,S)
 *   --family gpt2,llama   families (default both)
 *   --backend NAME        auto | native | wasm | cpu | tensorflow | tensorflow-gpu
 *                         (default: RINGTUNE_BACKEND or auto; the table says which ran)
 *   --threads N           native engine threads (RINGTUNE_THREADS) and the anchor's threads (default
 *                         RINGTUNE_THREADS or 1); wasm/cpu ignore it
 *   --steps N             timed steps (default 6 for A/B, 3 for S)
 *   --warmup N            untimed steps first (default 2; with 1, the anchor still page-faulted ~110k pages in its timed S step)
 *   --no-torch            skip the PyTorch anchor
 *   --malloc-retain       run the ringtune child with the anchor's GLIBC_TUNABLES too
 *   --timeout-min M       kill a child after M minutes (default 30) and record the row as failed
 *   --out FILE            JSON output (default bench/results/step.json)
 * Internal: --child runs one measurement and prints `RESULT {json}`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type * as tfTypes from '@tensorflow/tfjs-core';
import { anchorUnavailable, failure, MALLOC_RETAIN, parseResult, runMeasured, runTorchAnchor, type AnchorRun } from './anchor.ts';

const CONFIG_NAMES = ['A', 'B', 'S'] as const;
type ConfigName = (typeof CONFIG_NAMES)[number];
const FAMILIES = ['gpt2', 'llama'] as const;
type BenchFamily = (typeof FAMILIES)[number];

/** Shapes and batches; these must stay equal to CONFIGS in train_torch.py (n_params is checked). */
const CONFIGS: Record<ConfigName, { vocab: number; d: number; heads: number; layers: number; batch: number; seq: number; steps: number; warmup: number }> = {
  A: { vocab: 4096, d: 128, heads: 4, layers: 4, batch: 8, seq: 128, steps: 6, warmup: 2 },
  B: { vocab: 8192, d: 256, heads: 4, layers: 6, batch: 8, seq: 128, steps: 6, warmup: 2 },
  S: { vocab: 50257, d: 768, heads: 12, layers: 12, batch: 4, seq: 128, steps: 3, warmup: 2 },
};
/** Indicative anchor figures from shared/anchors/README.md, printed only when the anchor did not run. */
const README_FIGURES: Record<ConfigName, string> = { A: '~6000-7600', B: '~1900', S: '~105' };
/** The anchor's optimiser settings (torch.optim.AdamW, lr 3e-4, wd 0.01). */
const LR = 3e-4;
const BACKEND_CHOICES = ['auto', 'native', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];

const { values: args } = parseArgs({
  options: {
    configs: { type: 'string', default: 'A,B,S' },
    family: { type: 'string', default: 'gpt2,llama' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
    'malloc-retain': { type: 'boolean', default: false },
    'timeout-min': { type: 'string', default: '30' },
    out: { type: 'string' },
    child: { type: 'boolean', default: false },
    config: { type: 'string' },
  },
  strict: true,
});

function fail(msg: string): never {
  console.error(`bench:step: ${msg}`);
  process.exit(2);
}

function intOption(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}

function listOption<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of items) if (!(allowed as readonly string[]).includes(s)) fail(`--${name}: unknown "${s}" (use ${allowed.join(',')})`);
  if (items.length === 0) fail(`--${name} is empty`);
  return items as T[];
}

/** As Python's statistics.median (the anchor's): the mean of the two middle values for an even count. */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/** What one ringtune child reports. */
interface ChildResult {
  family: BenchFamily;
  config: ConfigName;
  backend: string;
  threads: number;
  params: number;
  batch: number;
  seq: number;
  steps: number;
  warmup: number;
  buildS: number;
  stepMs: number;
  fwdBwdMs: number;
  optimizerMs: number;
  tokensPerS: number;
  stepTimesMs: number[];
  firstLoss: number;
  lastLoss: number;
  selfMaxRssKiB: number;
}

// ------------------------------------------------------------------------------------------------
// Child: one (family, config) measurement in this process.

async function childMain(): Promise<void> {
  const family = listOption('family', args.family!, FAMILIES)[0];
  const name = listOption('config', args.config ?? '', CONFIG_NAMES)[0];
  const c = CONFIGS[name];
  const steps = intOption('steps', args.steps, 1) ?? c.steps;
  const warmup = intOption('warmup', args.warmup, 0) ?? c.warmup;
  const threads = intOption('threads', args.threads, 1) ?? 1;
  const tf = await import('@tensorflow/tfjs-core');
  const { backendChoiceFrom, initBackend, setThreads } = await import('../src/model/backend.ts');
  const { Model } = await import('../src/model/model.ts');
  const { shapeConfig } = await import('../src/model/presets.ts');
  const { AdamW, ADAMW_DEFAULTS } = await import('../src/optim/adamw.ts');
  const { FlatParams } = await import('../src/train/flat-params.ts');
  const { crossEntropySum } = await import('../src/train/loss.ts');
  const { Rng } = await import('../src/util/rng.ts');

  const info = await initBackend(backendChoiceFrom(args.backend));
  await setThreads(threads);
  const B = c.batch;
  const T = c.seq;
  const tb = performance.now();
  // Positions = seq, as the anchor (its wpe has seq rows), so the parameter counts match exactly.
  const cfg = shapeConfig(family, { vocab: c.vocab, d: c.d, layers: c.layers, heads: c.heads, kvHeads: c.heads, positions: T });
  const model = Model.random(cfg, 'causal-lm', 1);
  const flat = new FlatParams(model);
  await flat.readParams();
  const opt = new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask());
  const buildS = (performance.now() - tb) / 1000;
  const rng = new Rng(2);
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => rng.int(cfg.vocabSize));
  const inputs = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]);
  const targets = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + 1]);
  const fb: number[] = [];
  const opts: number[] = [];
  const total: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward({ ids: tf.tensor2d(inputs, [B, T], 'int32') });
      const sum = crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.ones([B * T]));
      return tf.div(sum, B * T) as tfTypes.Scalar;
    }, model.variables());
    losses.push((await value.data())[0]);
    await flat.readGrads(grads, false);
    tf.dispose([value, ...Object.values(grads)]);
    const t1 = performance.now();
    opt.update(flat.params, flat.grads, LR);
    flat.writeParams();
    const t2 = performance.now();
    console.error(`    ${family} ${name} step ${s + 1}/${warmup + steps}${s < warmup ? ' (warm-up)' : ''}: ${(t2 - t0).toFixed(0)} ms, loss ${losses[s].toFixed(4)}`);
    if (s >= warmup) {
      fb.push(t1 - t0);
      opts.push(t2 - t1);
      total.push(t2 - t0);
    }
  }
  const stepMs = median(total);
  const r: ChildResult = {
    family, config: name, backend: info.name, threads, params: model.numParams, batch: B, seq: T, steps, warmup,
    buildS: +buildS.toFixed(2), stepMs: +stepMs.toFixed(1), fwdBwdMs: +median(fb).toFixed(1), optimizerMs: +median(opts).toFixed(1),
    tokensPerS: Math.round((B * T) / (stepMs / 1000)), stepTimesMs: total.map((x) => +x.toFixed(1)),
    firstLoss: +losses[0].toFixed(4), lastLoss: +losses[losses.length - 1].toFixed(4),
    selfMaxRssKiB: process.resourceUsage().maxRSS,
  };
  model.dispose();
  console.log(`RESULT ${JSON.stringify(r)}`);
}

// ------------------------------------------------------------------------------------------------
// Driver

interface Row {
  family: BenchFamily;
  config: ConfigName;
  shape: string;
  ringtune?: ChildResult & { peakRssMiB?: number; wallS: number };
  ringtuneError?: string;
  torch?: { tokensPerS: number; stepMs: number; fwdBwdMs: number; adamwMs: number; params: number; peakRssMiB?: number; wallS: number; lossFirst: number; lossLast: number; blas: string | null; faultsPerStep: number; command: string };
  torchError?: string;
  /** ringtune tokens/s / PyTorch tokens/s (higher is better). */
  ratio?: number;
  /** ringtune peak RSS / PyTorch peak RSS (lower is better). */
  rssRatio?: number;
}

const mib = (kib: number | undefined) => (kib === undefined ? undefined : +(kib / 1024).toFixed(0));

async function driverMain(): Promise<void> {
  const configs = listOption('configs', args.configs!, CONFIG_NAMES);
  const families = listOption('family', args.family!, FAMILIES);
  const backend = (args.backend ?? process.env.RINGTUNE_BACKEND ?? 'auto').trim() || 'auto';
  // The driver loads no tfjs; the child validates again with backendChoiceFrom.
  if (!BACKEND_CHOICES.includes(backend)) fail(`--backend: unknown "${backend}" (use ${BACKEND_CHOICES.join(', ')})`);
  const threads = intOption('threads', args.threads ?? process.env.RINGTUNE_THREADS, 1) ?? 1;
  const stepsOpt = intOption('steps', args.steps, 1);
  const warmupOpt = intOption('warmup', args.warmup, 0);
  const timeoutMs = (intOption('timeout-min', args['timeout-min'], 1) ?? 30) * 60_000;
  const noTorchWhy = args['no-torch'] ? '--no-torch' : anchorUnavailable();
  const outPath = args.out ? resolve(args.out) : fileURLToPath(new URL('./results/step.json', import.meta.url));
  const self = fileURLToPath(import.meta.url);
  const echo = (s: string) => process.stderr.write(s);

  console.error(`bench:step: configs ${configs.join(',')}, families ${families.join(',')}, backend ${backend}, threads ${threads}` +
    `, PyTorch anchor: ${noTorchWhy ? `not run (${noTorchWhy})` : 'yes'}`);
  const rows: Row[] = [];
  for (const name of configs) {
    const c = CONFIGS[name];
    const steps = stepsOpt ?? c.steps;
    const warmup = warmupOpt ?? c.warmup;
    for (const family of families) {
      const row: Row = { family, config: name, shape: `vocab ${c.vocab}, d ${c.d}, ${c.heads} heads, ${c.layers} layers, batch ${c.batch} x ${c.seq}` };
      rows.push(row);
      console.error(`  ${family} ${name}: ringtune (${c.batch} x ${c.seq}, ${warmup} warm-up + ${steps} timed steps)`);
      const env: NodeJS.ProcessEnv = { ...process.env, RINGTUNE_BACKEND: backend, RINGTUNE_THREADS: String(threads) };
      if (args['malloc-retain']) env.GLIBC_TUNABLES = MALLOC_RETAIN;
      const m = await runMeasured(process.execPath, [...process.execArgv, self, '--child', '--family', family, '--config', name,
        '--backend', backend, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)], { env, timeoutMs, echo });
      const r = m.status === 0 ? parseResult<ChildResult>(m.stdout) : undefined;
      if (r) {
        row.ringtune = { ...r, peakRssMiB: mib(m.peakRssKiB ?? r.selfMaxRssKiB), wallS: +m.wallS.toFixed(1) };
        console.error(`  ${family} ${name}: ${r.tokensPerS} tokens/s on ${r.backend}, peak RSS ${row.ringtune.peakRssMiB} MiB`);
      } else {
        row.ringtuneError = failure(m);
        console.error(`  ${family} ${name}: FAILED (${row.ringtuneError})`);
      }
      if (family !== 'gpt2') continue; // the anchor is a GPT-2-style model only
      if (noTorchWhy) {
        row.torchError = `not measured (${noTorchWhy})`;
        continue;
      }
      console.error(`  ${name}: PyTorch anchor`);
      const a: AnchorRun = await runTorchAnchor(name, { threads, steps, warmup, timeoutMs, echo });
      if (a.result) {
        const t = a.result;
        row.torch = {
          tokensPerS: Math.round(t.tokens_per_s), stepMs: +(t.median_step_s * 1000).toFixed(1), fwdBwdMs: +(t.median_fwd_bwd_s * 1000).toFixed(1),
          adamwMs: +(t.median_adamw_step_s * 1000).toFixed(1), params: t.n_params, peakRssMiB: mib(a.peakRssKiB), wallS: +a.wallS.toFixed(1),
          lossFirst: +t.loss_first.toFixed(4), lossLast: +t.loss_last.toFixed(4), blas: t.blas_lib, faultsPerStep: t.median_minor_page_faults_per_step,
          command: a.command,
        };
        console.error(`  ${name}: PyTorch ${row.torch.tokensPerS} tokens/s, peak RSS ${row.torch.peakRssMiB} MiB`);
        if (row.ringtune) {
          if (row.ringtune.params !== t.n_params) {
            row.torchError = `shape mismatch: ringtune ${row.ringtune.params} params, PyTorch ${t.n_params}; no ratio`;
          } else {
            row.ratio = +(row.ringtune.tokensPerS / row.torch.tokensPerS).toFixed(3);
            if (row.ringtune.peakRssMiB && row.torch.peakRssMiB) row.rssRatio = +(row.ringtune.peakRssMiB / row.torch.peakRssMiB).toFixed(2);
          }
        }
      } else {
        row.torchError = `anchor failed: ${a.error}`;
        console.error(`  ${name}: PyTorch anchor FAILED (${a.error})`);
      }
    }
  }

  const ran = [...new Set(rows.flatMap((r) => (r.ringtune ? [r.ringtune.backend] : [])))];
  console.log(`\nbench:step: backend ${ran.join(', ') || '(none ran)'} (asked: ${backend}), ${threads} thread${threads > 1 ? 's' : ''}; ` +
    `PyTorch 1.13 anchor ${noTorchWhy ? 'not run' : `in the same run, ${threads} thread${threads > 1 ? 's' : ''}, best-configured`}; median of timed steps\n`);
  console.log('| family | config | params | step ms | fwd+bwd ms | AdamW+copy ms | tokens/s | peak RSS MiB | PyTorch step ms | PyTorch tokens/s | PyTorch peak RSS MiB | ratio tokens/s | ratio RSS | loss first -> last |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const g = r.ringtune;
    const ours = g
      ? `${(g.params / 1e6).toFixed(2)}M | ${g.stepMs} | ${g.fwdBwdMs} | ${g.optimizerMs} | ${g.tokensPerS} | ${g.peakRssMiB ?? '?'}`
      : `failed: ${r.ringtuneError} | | | | |`;
    const t = r.torch;
    const theirs = t
      ? `${t.stepMs} | ${t.tokensPerS} | ${t.peakRssMiB ?? '?'}`
      : r.family === 'gpt2' ? ` | not measured (README: ${README_FIGURES[r.config]}) | ` : ' | n/a (no Llama anchor) | ';
    const ratio = r.ratio !== undefined ? `${r.ratio} | ${r.rssRatio ?? ''}` : r.torchError?.startsWith('shape') ? 'shape mismatch | ' : ' | ';
    const loss = g ? `${g.firstLoss} -> ${g.lastLoss}` : '';
    console.log(`| ${r.family} | ${r.config} | ${ours} | ${theirs} | ${ratio} | ${loss} |`);
  }
  console.log('\nratio tokens/s = ringtune / PyTorch (higher is better); ratio RSS = ringtune peak RSS / PyTorch peak RSS (lower is better).');
  for (const r of rows) if (r.torchError && r.torch === undefined && !r.torchError.startsWith('not measured')) console.log(`note: ${r.family} ${r.config}: ${r.torchError}`);
  for (const r of rows) if (r.torchError?.startsWith('shape')) console.log(`note: ${r.family} ${r.config}: ${r.torchError}`);

  await mkdir(dirname(outPath), { recursive: true });
  const out = {
    bench: 'step', date: new Date().toISOString(), backendAsked: backend, backendsRan: ran, threads, node: process.version,
    cpus: cpus().length, cpuModel: cpus()[0]?.model, mallocRetain: args['malloc-retain'], torch: noTorchWhy ? `not run: ${noTorchWhy}` : 'same run',
    command: `npm run bench:step -- ${process.argv.slice(2).join(' ')}`.trim(), rows,
  };
  await writeFile(outPath, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nwrote ${outPath}`);
  if (rows.some((r) => !r.ringtune)) process.exitCode = 1;
}

if (args.child) await childMain();
else await driverMain();
