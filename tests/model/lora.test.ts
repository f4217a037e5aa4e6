/**
 * LoRA in PEFT's format: a fresh adapter (B = 0) leaves the logits bit-identical; a merged model
 * (checked against a float64 W + s B A in HF layout) gives the adapter's logits; the adapter files
 * carry PEFT's key names and shapes (written down here per family); save -> load is bit-identical;
 * bad adapter directories are errors naming the file and the field or key.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { configFromHF, configToHF, type Family, type Task } from '../../src/model/config.ts';
import { loadModel, saveModel } from '../../src/model/model-dir.ts';
import type { Model } from '../../src/model/model.ts';
import { paramSpecs } from '../../src/model/model.ts';
import { ADAPTER_FILES, loadAdapter, loadWithAdapter, mergeToDir, resolveModelArgs, saveAdapter } from '../../src/model/peft.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from '../../src/model/safetensors.ts';
import { idsTensor, makeModel, randomHost, randomIds, ready, relErr } from './helpers.ts';
import { loraModel } from './lora-helpers.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-lora-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const ids = randomIds(2, 6, 37, 5);
async function logits(model: Model): Promise<Float32Array> {
  const mask = ids.map((r) => r.map(() => 1));
  const out = tf.tidy(() => model.forward({ ids: idsTensor(ids), lengths: [6, 6], attentionMask: model.config.family === 'bert' ? idsTensor(mask) : undefined }));
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const CASES: Array<{ family: Family; task: Task }> = [
  { family: 'llama', task: 'causal-lm' },
  { family: 'gpt2', task: 'causal-lm' },
  { family: 'bert', task: 'classification' },
  { family: 'llama', task: 'classification' },
];

for (const c of CASES) {
  test(`${c.family} ${c.task}: a fresh adapter (B = 0) gives the base logits bit for bit, and A is not zero`, async () => {
    await ready;
    const { model, host } = loraModel({ ...c, lora: { targetModules: c.family === 'gpt2' ? ['c_attn', 'c_proj', 'c_fc'] : undefined } });
    const base = makeModel(model.config, c.task, host);
    const a = model.adapter!;
    const firstA = (await a.params.get(a.targets[0].a)!.data()) as Float32Array;
    const bound = 1 / Math.sqrt(a.targets[0].inFeatures);
    assert.ok(firstA.some((x) => x !== 0) && firstA.every((x) => Math.abs(x) <= bound), 'A ~ U(-1/sqrt(in), 1/sqrt(in))');
    assert.ok(bytes(await logits(model)).equals(bytes(await logits(base))), 'LoRA logits with B = 0 equal the base logits bitwise');
    model.dispose();
    base.dispose();
  });
}

/** Float64 merge in the HF layout from the PEFT file: W += s * B @ A (nn.Linear [out, in]); Conv1D [in, out] gets its transpose. */
function merge64(base: Map<string, HostTensor>, peft: Map<string, HostTensor>, scale: number, conv1d: boolean): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [key, A] of peft) {
    if (!key.endsWith('.lora_A.weight')) continue;
    const module = key.slice('base_model.model.'.length, -'.lora_A.weight'.length);
    const B = peft.get(key.replace('lora_A', 'lora_B'))!;
    const W = base.get(`${module}.weight`)!;
    const [r, inF] = A.shape;
    const outF = B.shape[0];
    const merged = Float64Array.from(W.data);
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += B.data[o * r + k] * A.data[k * inF + i];
        merged[conv1d ? i * outF + o : o * inF + i] += scale * s;
      }
    }
    out.set(`${module}.weight`, merged);
  }
  return out;
}

for (const c of CASES) {
  test(`${c.family} ${c.task}: ringtune merge writes W + s B A (float64 check) and its logits equal the adapter forward within 1e-5`, async (t) => {
    await ready;
    const dir = await tempDir(t);
    const { model, host } = loraModel({ ...c, random: true, lora: { alpha: 12, useRslora: c.family === 'llama' } });
    const base = makeModel(model.config, c.task, host);
    await saveModel(base, join(dir, 'base'));
    await saveAdapter(model, join(dir, 'adapter'), { baseModel: join(dir, 'base') });
    await mergeToDir(join(dir, 'base'), join(dir, 'adapter'), join(dir, 'merged'));
    await assert.rejects(mergeToDir(join(dir, 'base'), join(dir, 'adapter'), join(dir, 'merged')), /exists; pass --overwrite/);

    const peft = (await readSafetensors(join(dir, 'adapter', ADAPTER_FILES.weights))).tensors;
    const baseHF = (await readSafetensors(join(dir, 'base', 'model.safetensors'))).tensors;
    const mergedHF = (await readSafetensors(join(dir, 'merged', 'model.safetensors'))).tensors;
    const scale = c.family === 'llama' ? 12 / Math.sqrt(4) : 12 / 4;
    const want = merge64(baseHF, peft, scale, c.family === 'gpt2');
    assert.ok(want.size >= 2);
    for (const [key, w] of want) assert.ok(relErr(mergedHF.get(key)!.data, w) < 1e-6, `${key}: ${relErr(mergedHF.get(key)!.data, w)}`);
    // modules_to_save replace the base's tensors
    for (const [key, t64] of peft) if (!key.includes('lora_')) assert.ok(bytes(mergedHF.get(key.slice('base_model.model.'.length))!.data).equals(bytes(t64.data)), key);
    // Untouched tensors are the base's bits.
    const untouched = [...baseHF.keys()].filter((k) => !want.has(k) && ![...peft.keys()].some((p) => p.endsWith(`.${k}`) || p === `base_model.model.${k}`));
    for (const k of untouched) assert.ok(bytes(mergedHF.get(k)!.data).equals(bytes(baseHF.get(k)!.data)), k);

    const { model: merged } = await loadModel(join(dir, 'merged'));
    const err = relErr(await logits(merged), await logits(model));
    assert.ok(err < 1e-5, `merged vs adapter logits: ${err}`);
    // The inference path (--adapter): merged in memory with the forward's own arithmetic, bit for bit.
    const { model: viaFlag } = await loadWithAdapter(join(dir, 'base'), join(dir, 'adapter'));
    assert.ok(bytes(await logits(viaFlag)).equals(bytes(await logits(model))));
    for (const m of [model, base, merged, viaFlag]) m.dispose();
  });
}

/** PEFT's names and shapes for the tiny configs (d 16, 2 layers, llama kv 2 x 4, ffn 24 / gpt2 64), r 4. */
const KEYS: Array<{ family: Family; task: Task; targets?: string[]; keys: Record<string, number[]> }> = [
  {
    family: 'llama', task: 'causal-lm', keys: {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': [4, 16], 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': [16, 4],
      'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight': [4, 16], 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight': [8, 4],
      'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight': [4, 16], 'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight': [16, 4],
      'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight': [4, 16], 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight': [8, 4],
    },
  },
  {
    family: 'llama', task: 'classification', targets: ['down_proj'], keys: {
      'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight': [4, 24], 'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight': [16, 4],
      'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight': [4, 24], 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight': [16, 4],
      'base_model.model.score.weight': [3, 16],
    },
  },
  {
    family: 'gpt2', task: 'causal-lm', targets: ['c_attn', 'c_proj'], keys: {
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': [4, 16], 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': [48, 4],
      'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight': [4, 16], 'base_model.model.transformer.h.0.attn.c_proj.lora_B.weight': [16, 4],
      'base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight': [4, 64], 'base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight': [16, 4],
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': [4, 16], 'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': [48, 4],
      'base_model.model.transformer.h.1.attn.c_proj.lora_A.weight': [4, 16], 'base_model.model.transformer.h.1.attn.c_proj.lora_B.weight': [16, 4],
      'base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight': [4, 64], 'base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight': [16, 4],
    },
  },
  {
    family: 'bert', task: 'classification', targets: ['dense'], keys: {
      'base_model.model.bert.encoder.layer.0.attention.output.dense.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.0.attention.output.dense.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.0.intermediate.dense.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.0.intermediate.dense.lora_B.weight': [24, 4],
      'base_model.model.bert.encoder.layer.0.output.dense.lora_A.weight': [4, 24], 'base_model.model.bert.encoder.layer.0.output.dense.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.1.attention.output.dense.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.1.attention.output.dense.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.1.intermediate.dense.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.1.intermediate.dense.lora_B.weight': [24, 4],
      'base_model.model.bert.encoder.layer.1.output.dense.lora_A.weight': [4, 24], 'base_model.model.bert.encoder.layer.1.output.dense.lora_B.weight': [16, 4],
      // PEFT's suffix match catches the pooler's nn.Linear too
      'base_model.model.bert.pooler.dense.lora_A.weight': [4, 16], 'base_model.model.bert.pooler.dense.lora_B.weight': [16, 4],
      'base_model.model.classifier.weight': [3, 16], 'base_model.model.classifier.bias': [3],
    },
  },
  {
    family: 'bert', task: 'classification', keys: {
      'base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.0.attention.self.value.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.0.attention.self.value.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.1.attention.self.query.lora_B.weight': [16, 4],
      'base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight': [4, 16], 'base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight': [16, 4],
      'base_model.model.classifier.weight': [3, 16], 'base_model.model.classifier.bias': [3],
    },
  },
];

for (const k of KEYS) {
  test(`${k.family} ${k.task} [${k.targets ?? 'default'}]: PEFT key names and shapes, adapter_config.json, save -> load bit-identical`, async (t) => {
    await ready;
    const dir = await tempDir(t);
    const { model, host } = loraModel({ family: k.family, task: k.task, random: true, lora: { targetModules: k.targets } });
    await saveAdapter(model, join(dir, 'a'), { baseModel: '/models/base' });
    const st = await readSafetensors(join(dir, 'a', ADAPTER_FILES.weights));
    assert.deepEqual(Object.fromEntries([...st.tensors].map(([n, t]) => [n, t.shape]).sort()), Object.fromEntries(Object.entries(k.keys).sort()));
    const cfg = JSON.parse(await readFile(join(dir, 'a', ADAPTER_FILES.config), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, k.task === 'causal-lm' ? 'CAUSAL_LM' : 'SEQ_CLS');
    assert.equal(cfg.base_model_name_or_path, '/models/base');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);
    assert.equal(cfg.fan_in_fan_out, k.family === 'gpt2');
    assert.equal(cfg.bias, 'none');
    assert.equal(cfg.use_dora, false);
    assert.deepEqual(cfg.modules_to_save, k.task === 'classification' ? [k.family === 'bert' ? 'classifier' : 'score'] : null);

    const again = makeModel(model.config, k.task, host);
    await loadAdapter(again, join(dir, 'a'));
    assert.ok(bytes(await logits(again)).equals(bytes(await logits(model))), 'round trip logits');
    const before = tf.memory().numTensors;
    again.dispose();
    assert.ok(tf.memory().numTensors < before, 'dispose frees the adapter');
    model.dispose();
  });
}

test('--model naming an adapter directory takes the base from base_model_name_or_path', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const { model, host } = loraModel({ family: 'llama', task: 'causal-lm' });
  await saveModel(makeModel(model.config, 'causal-lm', host), join(dir, 'base'));
  await saveAdapter(model, join(dir, 'ad'), { baseModel: join(dir, 'base') });
  assert.deepEqual(await resolveModelArgs(join(dir, 'ad')), { base: join(dir, 'base'), adapter: join(dir, 'ad') });
  assert.deepEqual(await resolveModelArgs(join(dir, 'base')), { base: join(dir, 'base') });
  await assert.rejects(resolveModelArgs(join(dir, 'base'), join(dir, 'base')), /--adapter .*no adapter_config\.json/);
  model.dispose();
});

test('bad adapter directories: errors name adapter_config.json and the field, or the key, the file and both shapes', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const { model } = loraModel({ family: 'llama', task: 'causal-lm', random: true });
  const good = join(dir, 'good');
  await saveAdapter(model, good, { baseModel: 'x' });
  const cfg = JSON.parse(await readFile(join(good, ADAPTER_FILES.config), 'utf8'));
  const fresh = () => makeModel(model.config, 'causal-lm', new Map([...paramSpecs(model.config, 'causal-lm')].map((s) => [s.name, { shape: s.shape, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) }])));
  const variant = async (name: string, patch: Record<string, unknown>) => {
    const d = join(dir, name);
    await saveAdapter(model, d, { baseModel: 'x' });
    await writeFile(join(d, ADAPTER_FILES.config), JSON.stringify({ ...cfg, ...patch }));
    return d;
  };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ peft_type: 'IA3' }, /adapter_config\.json: peft_type: "IA3"; ringtune loads only "LORA"/],
    [{ bias: 'all' }, /adapter_config\.json: bias: "all"; only "none"/],
    [{ use_dora: true }, /adapter_config\.json: use_dora: DoRA/],
    [{ rank_pattern: { q_proj: 2 } }, /adapter_config\.json: rank_pattern: per-module ranks/],
    [{ layers_to_transform: [0] }, /adapter_config\.json: layers_to_transform/],
    [{ target_modules: 'q_proj|v_proj' }, /adapter_config\.json: target_modules: .*regex string is not supported/],
    [{ target_modules: ['q_proj', 'wq'] }, /lora\.target_modules: wq is not a llama linear layer; valid names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj/],
    [{ r: 2 }, /layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \[4,16\] in .*adapter_model\.safetensors but the base model needs \[2,16\]/],
    [{ target_modules: ['q_proj', 'v_proj', 'k_proj'] }, /missing keys: .*k_proj\.lora_A\.weight/],
  ];
  for (const [i, [patch, re]] of cases.entries()) {
    const m = fresh();
    await assert.rejects(loadAdapter(m, await variant(`v${i}`, patch)), re, JSON.stringify(patch));
    m.dispose();
  }
  // Another family: its module names are refused first; with the names patched, its keys are unknown.
  const gpt2 = loraModel({ family: 'gpt2', task: 'causal-lm' });
  await saveAdapter(gpt2.model, join(dir, 'gpt2'), { baseModel: 'x' });
  const m = fresh();
  await assert.rejects(loadAdapter(m, join(dir, 'gpt2')), /c_attn is not a llama linear layer/);
  await writeFile(join(dir, 'gpt2', ADAPTER_FILES.config), JSON.stringify({ ...cfg }));
  await assert.rejects(loadAdapter(m, join(dir, 'gpt2')), /another model family or size[\s\S]*keys not in this llama model .*transformer\.h\.0\.attn\.c_attn\.lora_A\.weight/);
  m.dispose();
  gpt2.model.dispose();
  // Another size: a 3-layer llama lacks nothing the adapter has but needs layer 2's pairs; a wider one mismatches shapes.
  const deeper = configFromHF({ ...configToHF(model.config, 'causal-lm'), num_hidden_layers: 3 });
  const m3 = makeModel(deeper, 'causal-lm', randomHost(deeper, 'causal-lm', 1));
  await assert.rejects(loadAdapter(m3, good), /missing keys: base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_A\.weight/);
  m3.dispose();
  const wider = configFromHF({ ...configToHF(model.config, 'causal-lm'), hidden_size: 32 });
  const m32 = makeModel(wider, 'causal-lm', randomHost(wider, 'causal-lm', 1));
  await assert.rejects(loadAdapter(m32, good), /q_proj\.lora_A\.weight has shape \[4,16\] in .*adapter_model\.safetensors but the base model needs \[4,32\]/);
  m32.dispose();
  model.dispose();
});

test('a base *Model adapter (keys without the body prefix) loads like the *For* one', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const { model, host } = loraModel({ family: 'llama', task: 'causal-lm', random: true });
  await saveAdapter(model, join(dir, 'a'), { baseModel: 'x' });
  const st = await readSafetensors(join(dir, 'a', ADAPTER_FILES.weights));
  await writeSafetensors(join(dir, 'a', ADAPTER_FILES.weights), [...st.tensors].map(([k, v]) => [k.replace('base_model.model.model.', 'base_model.model.'), v] as [string, HostTensor]));
  const again = makeModel(model.config, 'causal-lm', host);
  await loadAdapter(again, join(dir, 'a'));
  assert.ok(bytes(await logits(again)).equals(bytes(await logits(model))));
  again.dispose();
  model.dispose();
});
