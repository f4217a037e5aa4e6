/**
 * Model presets: the real-size shapes (GPT-2 small, SmolLM-135M) have the published dimensions and
 * parameter counts. Counts are computed here from the architectures' formulas, independently of
 * paramSpecs: GPT-2 (Radford et al. 2019; HF modeling_gpt2) and Llama (HF modeling_llama).
 *
 * The end-to-end part runs `ringtune model create` + `model info` on both real presets (~60-90 s
 * each on a busy 2-vCPU machine: 124-135M random weights are drawn in JS, ~500 MB of safetensors
 * written and read back), so it is opt-in: RINGTUNE_SLOW_TESTS=1.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { InputError } from '../../src/errors.ts';
import { paramSpecs } from '../../src/model/model.ts';
import { numel } from '../../src/model/params.ts';
import { PRESETS, presetConfig, presetHFConfig } from '../../src/model/presets.ts';

const run = promisify(execFile);

/** GPT-2 LM with tied head: wte + wpe + L blocks (2 LayerNorms, c_attn, attn c_proj, c_fc, mlp c_proj, all with biases) + ln_f. */
function gpt2Params(V: number, P: number, d: number, L: number, ff = 4 * d): number {
  const ln = 2 * d;
  const block = 2 * ln + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d);
  return V * d + P * d + L * block + ln;
}

/** Llama LM with tied head, no biases: embed + L blocks (2 RMSNorms, q/k/v/o with GQA, gate/up/down) + final norm. */
function llamaParams(V: number, d: number, L: number, H: number, KV: number, ff: number): number {
  const hd = d / H;
  const block = 2 * d + d * H * hd + 2 * d * KV * hd + H * hd * d + 3 * d * ff;
  return V * d + L * block + d;
}

const specCount = (family: 'gpt2' | 'llama', preset: string) =>
  paramSpecs(presetConfig(family, preset), 'causal-lm').reduce((n, s) => n + numel(s.shape), 0);

describe('real-size presets', () => {
  it('gpt2-124m is GPT-2 small: 124,439,808 parameters', () => {
    const cfg = presetConfig('gpt2', 'gpt2-124m');
    assert.deepEqual(
      [cfg.vocabSize, cfg.dModel, cfg.nLayers, cfg.nHeads, cfg.nKvHeads, cfg.headDim, cfg.dFF, cfg.maxPositions],
      [50257, 768, 12, 12, 12, 64, 3072, 1024],
    );
    assert.equal(cfg.activation, 'gelu_new'); // tanh approximation, as GPT-2
    assert.equal(cfg.tieEmbeddings, true);
    assert.equal(cfg.attentionBias && cfg.mlpBias, true);
    const expected = gpt2Params(50257, 1024, 768, 12);
    assert.equal(expected, 124_439_808); // the published count of HF `gpt2`
    assert.equal(specCount('gpt2', 'gpt2-124m'), expected);
  });

  it('llama-135m is SmolLM-135M: GQA 9/3 heads, SwiGLU 1536, 134,515,008 parameters', () => {
    const cfg = presetConfig('llama', 'llama-135m');
    assert.deepEqual(
      [cfg.vocabSize, cfg.dModel, cfg.nLayers, cfg.nHeads, cfg.nKvHeads, cfg.headDim, cfg.dFF, cfg.maxPositions],
      [49152, 576, 30, 9, 3, 64, 1536, 2048],
    );
    assert.equal(cfg.activation, 'silu');
    assert.equal(cfg.ropeTheta, 10000);
    assert.equal(cfg.tieEmbeddings, true);
    assert.equal(cfg.attentionBias || cfg.mlpBias, false);
    const expected = llamaParams(49152, 576, 30, 9, 3, 1536);
    assert.ok(expected > 100e6 && expected < 200e6);
    assert.equal(specCount('llama', 'llama-135m'), expected);
  });

  it('the older presets keep their shapes in every family', () => {
    for (const name of ['tiny', 'small', 'base'] as const) {
      const p = PRESETS[name];
      assert.equal(specCount('gpt2', name), gpt2Params(p.vocab, p.positions, p.d, p.layers));
      const ff = Math.ceil((8 * p.d) / 3 / 8) * 8;
      assert.equal(specCount('llama', name), llamaParams(p.vocab, p.d, p.layers, p.heads, p.kvHeads, ff));
      assert.equal(presetConfig('bert', name).dModel, p.d);
    }
  });

  it('a family-specific preset refuses the other families; unknown presets list the choices', () => {
    assert.throws(() => presetHFConfig('llama', 'gpt2-124m'), (e: Error) => e instanceof InputError && /gpt2 shape/.test(e.message));
    assert.throws(() => presetHFConfig('bert', 'llama-135m'), InputError);
    assert.throws(() => presetHFConfig('gpt2', 'huge'), (e: Error) => e instanceof InputError && /gpt2-124m/.test(e.message));
    assert.throws(() => presetHFConfig('gpt2', 'toString'), InputError); // not an inherited property
  });
});

const slow = process.env.RINGTUNE_SLOW_TESTS === '1' ? false : 'slow (~3 min): set RINGTUNE_SLOW_TESTS=1';
const cli = new URL('../../bin/ringtune.js', import.meta.url).pathname;

describe('ringtune model create / info on the real presets', { skip: slow }, () => {
  const cases = [
    { family: 'gpt2', preset: 'gpt2-124m', params: gpt2Params(50257, 1024, 768, 12), vocab: 50257,
      hf: { vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_inner: 3072, n_positions: 1024, activation_function: 'gelu_new', tie_word_embeddings: true } },
    { family: 'llama', preset: 'llama-135m', params: llamaParams(49152, 576, 30, 9, 3, 1536), vocab: 49152,
      hf: { vocab_size: 49152, hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, head_dim: 64, rope_theta: 10000, tie_word_embeddings: true } },
  ];
  for (const c of cases) {
    it(`${c.family} --preset ${c.preset}`, { timeout: 300_000 }, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'ringtune-preset-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const out = join(dir, 'm');
      const created = await run(process.execPath, [cli, 'model', 'create', '--family', c.family, '--preset', c.preset, '--out', out], { maxBuffer: 1 << 24 });
      assert.match(created.stdout, new RegExp(`${(c.params / 1e6).toFixed(2)}M parameters, vocab ${c.vocab}`));
      const json = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.hf)) assert.equal(json[k], v, `config.json ${k}`);

      const info = JSON.parse((await run(process.execPath, [cli, 'model', 'info', out], { maxBuffer: 1 << 24 })).stdout) as {
        parameters: number; vocabSize: number; family: string; tokenizer: { vocabSize: number };
      };
      assert.equal(info.family, c.family);
      assert.equal(info.parameters, c.params);
      assert.equal(info.vocabSize, c.vocab);
      // The shipped corpus yields a few thousand merges; reserved tokens fill the rest so ids match the model.
      assert.equal(info.tokenizer.vocabSize, c.vocab);
      const tok = JSON.parse(await readFile(join(out, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
      assert.equal(Object.keys(tok.model.vocab).length, c.vocab);
    });
  }
});
