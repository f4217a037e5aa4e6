/**
 * npm run bench:step — forward + backward + AdamW tokens/s on the active backend for
 *   config A: vocab 4096, d 128, 4 heads, 4 layers;  config B: vocab 8192, d 256, 4 heads, 6 layers
 * both at batch 8 x seq 128, in GPT-2 and Llama shapes. Prints a table, writes bench/results/step.json.
 * Reference (PyTorch 1.13 + OpenBLAS, one core, this machine): ~3800 tokens/s on A, ~700 on B.
 * Options: --steps N (timed steps per config, default 6), --only A|B, --family gpt2|llama.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend.ts';
import type { Family } from '../src/model/config.ts';
import { Model } from '../src/model/model.ts';
import { presetConfig } from '../src/model/presets.ts';
import { AdamW, ADAMW_DEFAULTS } from '../src/optim/adamw.ts';
import { FlatParams } from '../src/train/flat-params.ts';
import { crossEntropySum } from '../src/train/loss.ts';
import { Rng } from '../src/util/rng.ts';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '6' }, only: { type: 'string' }, family: { type: 'string' } } });
const B = 8;
const T = 128;
const PYTORCH_TOKENS_PER_S = { A: 3800, B: 700 } as const;
const CONFIGS = { A: 'small', B: 'base' } as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function benchOne(family: Family, name: 'A' | 'B', steps: number) {
  const cfg = presetConfig(family, CONFIGS[name], { maxPositions: T });
  if (family === 'llama') cfg.nKvHeads = cfg.nHeads; // same attention shape as the GPT-2 reference
  const model = Model.random(cfg, 'causal-lm', 1);
  const flat = new FlatParams(model);
  await flat.readParams();
  const opt = new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask());
  const rng = new Rng(2);
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => rng.int(cfg.vocabSize));
  const inputs = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]);
  const targets = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + 1]);
  const fb: number[] = [];
  const opts: number[] = [];
  const total: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < steps + 2; s++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward({ ids: tf.tensor2d(inputs, [B, T], 'int32') });
      const sum = crossEntropySum(logits, tf.tensor1d(targets, 'int32'), tf.ones([B * T]));
      return tf.div(sum, B * T) as tf.Scalar;
    }, model.variables());
    losses.push((await value.data())[0]);
    await flat.readGrads(grads, false);
    tf.dispose([value, ...Object.values(grads)]);
    const t1 = performance.now();
    opt.update(flat.params, flat.grads, 1e-3);
    flat.writeParams();
    const t2 = performance.now();
    if (s >= 2) {
      fb.push(t1 - t0);
      opts.push(t2 - t1);
      total.push(t2 - t0);
    }
  }
  const stepMs = median(total);
  const tokensPerS = (B * T) / (stepMs / 1000);
  const row = {
    family, config: name, params: model.numParams, batch: B, seq: T, steps,
    stepMs: +stepMs.toFixed(1), fwdBwdMs: +median(fb).toFixed(1), optimizerMs: +median(opts).toFixed(1),
    tokensPerS: Math.round(tokensPerS), pytorchTokensPerS: PYTORCH_TOKENS_PER_S[name],
    ratioToPytorch: +(tokensPerS / PYTORCH_TOKENS_PER_S[name]).toFixed(3),
    firstLoss: +losses[0].toFixed(4), lastLoss: +losses[losses.length - 1].toFixed(4),
  };
  model.dispose();
  return row;
}

const backend = await initBackend();
const rows = [];
for (const name of ['A', 'B'] as const) {
  if (args.only && args.only !== name) continue;
  for (const family of ['gpt2', 'llama'] as const) {
    if (args.family && args.family !== family) continue;
    const row = await benchOne(family, name, Number(args.steps));
    rows.push(row);
    console.error(`  ${family} ${name}: ${row.tokensPerS} tokens/s`);
  }
}
console.log(`\nbench:step on backend "${backend.name}" (batch ${B} x seq ${T}, median of timed steps)\n`);
console.log('| family | config | params | step ms | fwd+bwd ms | AdamW+copy ms | tokens/s | PyTorch tokens/s | ratio | loss first -> last |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.family} | ${r.config} | ${(r.params / 1e6).toFixed(2)}M | ${r.stepMs} | ${r.fwdBwdMs} | ${r.optimizerMs} | ${r.tokensPerS} | ${r.pytorchTokensPerS} | ${r.ratioToPytorch} | ${r.firstLoss} -> ${r.lastLoss} |`);
}
await mkdir('bench/results', { recursive: true });
const out = { bench: 'step', date: new Date().toISOString(), backend: backend.name, node: process.version, rows };
await writeFile('bench/results/step.json', JSON.stringify(out, null, 2) + '\n');
console.log('\nwrote bench/results/step.json');
