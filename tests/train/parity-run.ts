/**
 * Child process of backend-parity.test.ts: 20 training steps of a small GPT-2 and Llama (GQA) on the
 * backend named in argv[2]; prints one JSON line of the losses. One backend per process: kernels are global.
 */
import { collateLm } from '../../src/data/batch.ts';
import type { LmExample } from '../../src/data/examples.ts';
import { initBackend, type BackendName } from '../../src/model/backend.ts';
import { presetConfig } from '../../src/model/presets.ts';
import { Model } from '../../src/model/model.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../src/optim/adamw.ts';
import { FlatParams } from '../../src/train/flat-params.ts';
import { trainStep } from '../../src/train/train-step.ts';
import { Rng } from '../../src/util/rng.ts';

const info = await initBackend(process.argv[2] as BackendName, () => {});
const out: Record<string, number[]> = {};
for (const family of ['gpt2', 'llama'] as const) {
  const cfg = presetConfig(family, 'tiny', { maxPositions: 32 });
  const model = Model.random(cfg, 'causal-lm', 5);
  const flat = new FlatParams(model);
  await flat.readParams();
  const optimizer = new AdamW(flat.size, ADAMW_DEFAULTS, flat.decayMask());
  const rng = new Rng(11);
  const batch = (): LmExample[] => [...Array(4)].map((_, i) => {
    const len = 9 + rng.int(20);
    const tokens = [...Array(len)].map(() => rng.int(cfg.vocabSize));
    return { tokens, lossMask: tokens.map(() => 1), source: `#${i}` };
  });
  const losses: number[] = [];
  // The same two micro-batches every step: the loss must fall, so the comparison is not of constants.
  const micro = [collateLm(batch(), 0), collateLm(batch(), 0)];
  for (let s = 0; s < 20; s++) {
    const r = await trainStep({ model, flat, optimizer, gradClip: 1 }, micro, 1e-3);
    losses.push(r.loss);
  }
  out[family] = losses;
  model.dispose();
}
console.log(JSON.stringify({ backend: info.name, losses: out }));
