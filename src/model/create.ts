/**
 * `ringtune model create`: a randomly initialised model directory in Hugging Face format with a
 * tokenizer built from the corpus the project ships, so tests and demos never need the hub.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.ts';
import type { Family, Task } from './config.ts';
import { Model } from './model.ts';
import { saveModel } from './model-dir.ts';
import { presetConfig, type PresetOverrides } from './presets.ts';
import { Tokenizer } from './tokenizer.ts';
import { buildFamilyTokenizer, writeTokenizerFiles } from './tokenizer-build.ts';

export interface CreateOptions extends PresetOverrides {
  family: Family;
  preset: string;
  out: string;
  task?: Task;
  seed?: number;
  /** Text to build the tokenizer from (default: assets/corpus/general.txt). */
  corpus?: string;
}

export async function createModelDir(o: CreateOptions): Promise<{ numParams: number; vocabSize: number }> {
  const task = o.task ?? (o.family === 'bert' ? 'classification' : 'causal-lm');
  const config = presetConfig(o.family, o.preset, o);
  if (o.family === 'bert' && task !== 'classification') throw new InputError('--task: bert models support only classification');
  const built = buildFamilyTokenizer(o.family, config.vocabSize, o.corpus, { modelMaxLength: config.maxPositions });
  const tokDir = await mkdtemp(join(tmpdir(), 'ringtune-tok-'));
  try {
    await writeTokenizerFiles(tokDir, built);
    const tok = await Tokenizer.fromDir(tokDir);
    if (tok.vocabSize !== config.vocabSize) {
      throw new InputError(`tokenizer has ${tok.vocabSize} tokens but the model expects ${config.vocabSize}; the corpus may be too small for this vocab size`);
    }
    config.bosTokenId = tok.bosTokenId ?? tok.clsTokenId;
    config.eosTokenId = tok.eosTokenId ?? tok.sepTokenId;
    config.padTokenId = tok.padTokenId;
    const model = Model.random(config, task, o.seed ?? 0);
    try {
      await saveModel(model, o.out, { tokenizerFrom: tokDir, metadata: { ringtune: `random init, preset ${o.preset}, seed ${o.seed ?? 0}` } });
      return { numParams: model.numParams, vocabSize: config.vocabSize };
    } finally {
      model.dispose();
    }
  } finally {
    await rm(tokDir, { recursive: true, force: true });
  }
}
