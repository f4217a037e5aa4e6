/**
 * Eval, classify and serve see the same inputs: on texts longer than the max length, the label eval
 * gives each example (evalState over prepared examples, one at a time and batched) equals
 * classifyText's and serve's /v1/classify's over real HTTP, for gpt2 (last-token pooling: which
 * token ends up last decides the label) and bert ([CLS] pooling, [SEP] kept). The classifier is
 * fine-tuned briefly to name the keyword in a short text (a random one answers one label for
 * everything); the long texts carry several keywords, so which part survives truncation decides the
 * label, and an input that differs between the paths shows.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ClsExample } from '../../src/data/examples.ts';
import { evalState } from '../../src/train/evaluate.ts';
import { train } from '../../src/train/loop.ts';
import { prepareRun } from '../../src/train/prepare.ts';
import { classifyText } from '../../src/model/classify.ts';
import type { Family } from '../../src/model/config.ts';
import { createModelDir } from '../../src/model/create.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { startInferenceServer } from '../../src/serve/server.ts';
import { Rng } from '../../src/util/rng.ts';
import { job, quiet, ready, tempDir, writeLines } from '../train/fixtures.ts';

const MAX_LEN = 24;
const LABELS = ['north', 'east', 'south', 'west'];
const WORDS = 'the a sea ship wind rain over under river stone bright dark cold warm old new long short road'.split(' ');

/** Short texts with one keyword among the first words; the keyword is the label. */
function trainLines(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return [...Array(n)].map((_, i) => {
    const words = [...Array(3 + rng.int(4))].map(() => WORDS[rng.int(WORDS.length)]);
    const label = LABELS[i % LABELS.length];
    words.splice(rng.int(words.length), 0, label);
    return JSON.stringify({ text: words.join(' '), label });
  });
}

/** Texts of 4..50 words with keywords anywhere (always one last): most run past MAX_LEN tokens. */
function texts(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return [...Array(n)].map(() => {
    const words = [...Array(3 + rng.int(47))].map(() => (rng.int(4) === 0 ? LABELS : WORDS)[rng.int(4)]);
    return [...words, LABELS[rng.int(LABELS.length)]].join(' ');
  });
}

for (const family of ['gpt2', 'bert'] as Family[]) {
  test(`${family}: eval's per-example labels == classifyText's == serve's on over-long texts`, async (t) => {
    await ready;
    const dir = await tempDir(t);
    const base = join(dir, 'base');
    await createModelDir({ family, preset: 'tiny', out: base, task: 'classification', labels: LABELS, seed: 7, maxPositions: MAX_LEN });
    await writeLines(join(dir, 'train.jsonl'), trainLines(160, 3));
    const trained = await train(job(dir, {
      model: base, data: { train: 'train.jsonl', format: 'label', max_seq_len: MAX_LEN, eval_fraction: 0 },
      training: { max_steps: 40, global_batch: 16, lr: 3e-3 },
    }), quiet);
    const modelDir = trained.finalModelDir;
    const inputs = texts(40, 11);
    const data = await writeLines(join(dir, 'data.jsonl'), inputs.map((text, i) => JSON.stringify({ text, label: LABELS[i % LABELS.length] })));
    const j = job(dir, {
      model: modelDir, data: { train: data, format: 'label', max_seq_len: MAX_LEN, eval_fraction: 0 },
      training: { max_steps: 1, global_batch: 4, micro_batch: 4 },
    });
    const run = await prepareRun(j);
    const examples = run.data.train as ClsExample[];
    assert.deepEqual(run.labels, LABELS);
    assert.equal(examples.length, inputs.length);
    const long = inputs.filter((s) => run.tok.encode(s).length > MAX_LEN).length;
    assert.ok(long >= inputs.length * 0.7, `${long} of ${inputs.length} texts are over ${MAX_LEN} tokens`);
    assert.ok(examples.every((e) => e.tokens.length <= MAX_LEN));

    const { model } = await loadModel(modelDir, { task: 'classification', labels: run.labels });
    t.after(() => model.dispose());
    // Eval, one example at a time: the confusion matrix has one count, at [label][predicted].
    const evalLabels: string[] = [];
    for (const ex of examples) {
      const c = (await evalState(model, [ex], 1, run.padId)).classification!.confusion[ex.label];
      evalLabels.push(LABELS[c.indexOf(1)]);
    }
    const classified = await Promise.all(inputs.map(async (s) => (await classifyText(model, run.tok, s)).label));
    assert.deepEqual(classified, evalLabels);
    // A constant answer would make the comparison empty.
    assert.ok(new Set(evalLabels).size >= 2, `predictions: ${evalLabels.join(' ')}`);

    // Batched eval (padding to the longest of 4) counts the same confusion matrix.
    const batched = (await evalState(model, examples, 4, run.padId)).classification!.confusion;
    const expected = LABELS.map(() => LABELS.map(() => 0));
    examples.forEach((ex, i) => expected[ex.label][LABELS.indexOf(evalLabels[i])]++);
    assert.deepEqual(batched, expected);

    const s = await startInferenceServer({ modelDir, port: 0 });
    t.after(() => s.close());
    const res = await fetch(`http://127.0.0.1:${s.port}/v1/classify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: inputs }) });
    assert.equal(res.status, 200);
    const served = ((await res.json()) as { data: Array<{ label: string }> }).data.map((d) => d.label);
    assert.deepEqual(served, evalLabels);
  });
}
