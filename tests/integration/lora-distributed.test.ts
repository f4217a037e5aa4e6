/**
 * Distributed LoRA with a real nats-server and the gRPC ring between worker processes: 2 workers ==
 * 1 worker (per-step losses and the final adapter within 1e-5), and what the ring all-reduces is the
 * adapter's gradients (+ loss sum, count, stop vote), not the model's.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { loadJobFile } from '../../src/config/compile.ts';
import { ADAPTER_FILES } from '../../src/model/peft.ts';
import { readSafetensors } from '../../src/model/safetensors.ts';
import { prepareWorkerState } from '../../src/worker/step-loop.ts';
import { history, makeJob, runLocal, trainLosses } from './cluster-helpers.ts';

async function loraJob(dir: string, name: string, workers: number): Promise<string> {
  const file = await makeJob(dir, name, { workers, maxSteps: 12, globalBatch: 12, microBatch: 2 });
  const spec = parse(await readFile(file, 'utf8'));
  await writeFile(file, stringify({ ...spec, method: 'lora', lora: { r: 4, alpha: 8, target_modules: ['q_proj', 'v_proj', 'o_proj'] } }));
  return file;
}

test('LoRA: 2 workers == 1 worker over 12 steps (losses and adapter within 1e-5); the all-reduce buffer is adapter-sized', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-lora-dist-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const results = new Map<number, { losses: number[]; adapter: Map<string, Float32Array>; reduceBytes: number[] }>();
  for (const workers of [1, 2]) {
    const job = await loraJob(dir, `lora${workers}`, workers);
    const r = await runLocal(job);
    assert.equal(r.code, 0, r.output);
    const out = join(dir, `out-lora${workers}`);
    const st = await readSafetensors(join(out, 'final', ADAPTER_FILES.weights));
    const h = await history(out);
    const reduceBytes = h.filter((x) => x.type === 'train').map((x) => Number(x.reduce_bytes));
    results.set(workers, { losses: trainLosses(h), adapter: new Map([...st.tensors].map(([k, v]) => [k, v.data])), reduceBytes });
  }
  const one = results.get(1)!;
  const two = results.get(2)!;
  assert.equal(one.losses.length, 12);
  assert.ok(one.losses[11] < one.losses[0], `training must make progress: ${one.losses[0]} -> ${one.losses[11]}`);
  two.losses.forEach((l, i) => assert.ok(Math.abs(l - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i]), `step ${i + 1}: ${l} vs ${one.losses[i]}`));
  assert.deepEqual([...two.adapter.keys()], [...one.adapter.keys()]);
  let diff = 0;
  let scale = 0;
  let moved = 0;
  for (const [k, a] of one.adapter) {
    const b = two.adapter.get(k)!;
    a.forEach((x, i) => { diff = Math.max(diff, Math.abs(x - b[i])); scale = Math.max(scale, Math.abs(x)); });
    if (k.includes('lora_B')) moved = Math.max(moved, ...a.map(Math.abs));
  }
  assert.ok(moved > 1e-3, 'B moved away from 0');
  assert.ok(diff / scale < 1e-5, `max adapter difference ${diff} (scale ${scale})`);

  // Ring all-reduce on 2 ranks: each sends 2 (w - 1) / w = 1 buffer of fp32 [adapter gradients, loss sum, count, stop vote].
  const adapterSize = [...one.adapter.values()].reduce((n, a) => n + a.length, 0);
  assert.deepEqual([...new Set(two.reduceBytes)], [(adapterSize + 3) * 4], 'metrics.jsonl reduce_bytes');
  // What a worker all-reduces: the flat buffer runSteps hands the ring.
  const st = await prepareWorkerState(await loadJobFile(join(dir, 'lora2.yaml')));
  assert.equal(st.flat.reduceBuffer.length, adapterSize + 3);
  assert.ok(st.model.numParams > 20 * adapterSize, `model ${st.model.numParams} vs adapter ${adapterSize}`);
  st.model.dispose();
});
