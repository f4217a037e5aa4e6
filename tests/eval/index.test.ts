// The registry, and the distributed-evaluation contract for every metric it can build: states made on
// separate "workers", sent as JSON, merged in any order, compute to exactly the single-process result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bleuMetric, checkMetricNames, classificationMetric, evaluate, generationEntry, GENERATION_METRICS, mergeStates, METRICS, perplexityMetric,
  resultKeys, rougeMetric, squadMetric, type AnyMetric,
} from '../../src/eval/index.ts';
import { InputError } from '../../src/errors.ts';
import { checkMergeExact, randomSplit, rng } from './helpers.ts';

test('checkMetricNames: unknown names list every valid name; task and format are checked; generation names come back', () => {
  assert.throws(() => checkMetricNames(['blue', 'acc'], 'causal-lm', 'text'), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /eval\.metrics: unknown blue, acc; valid: /);
    for (const n of Object.keys(METRICS)) assert.ok(e.message.includes(n), `message lists ${n}`);
    return true;
  });
  assert.throws(() => checkMetricNames(['accuracy', 'f1'], 'causal-lm', 'text'), /accuracy, f1 are not computed for task causal-lm/);
  assert.throws(() => checkMetricNames(['perplexity'], 'classification', 'label'), /perplexity is not computed for task classification/);
  assert.throws(() => checkMetricNames(['rouge'], 'causal-lm', 'text'), /rouge need task causal-lm with format prompt-completion or messages \(got causal-lm, text\)/);
  assert.deepEqual(checkMetricNames(['loss', 'bleu', 'exact_match'], 'causal-lm', 'messages'), ['bleu', 'exact_match']);
  assert.deepEqual(checkMetricNames(['accuracy', 'loss'], 'classification', 'label'), []);
  assert.deepEqual(checkMetricNames(undefined, 'causal-lm', 'text'), []);
});

test('resultKeys: what an evaluation of each task reports', () => {
  assert.deepEqual(resultKeys('causal-lm', []), ['loss', 'perplexity', 'tokens']);
  assert.deepEqual(resultKeys('classification', []), ['loss', 'examples', 'accuracy', 'f1_macro', 'precision_macro', 'recall_macro', 'f1_micro']);
  assert.deepEqual(resultKeys('causal-lm', ['rouge', 'exact_match']), ['loss', 'perplexity', 'tokens', 'rouge1', 'rouge2', 'rougeL', 'generated', 'exact_match', 'token_f1']);
});

test('generation entries: the result keys are the ones resultKeys promises', () => {
  const base = resultKeys('causal-lm', []);
  for (const name of GENERATION_METRICS) {
    const e = generationEntry(name);
    const m = e.create();
    const r = e.results(m.compute(m.update(m.init(), e.input('the cat sat', 'the cat sat'))));
    assert.deepEqual(Object.keys(r).sort(), resultKeys('causal-lm', [name]).filter((k) => !base.includes(k)).sort(), name);
  }
});

test('mergeStates of no states is the empty state; of one state is that state', () => {
  const m = perplexityMetric() as unknown as AnyMetric;
  assert.deepEqual(mergeStates(m, []), m.init());
  const s = m.update(m.init(), { nllSum: 3.5, tokens: 2 });
  assert.deepEqual(m.compute(mergeStates(m, [s])), m.compute(s));
});

// One small dataset per registered metric, and how results must agree after merging.
const rand = rng(42);
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
const words = ['The', 'dog', 'bit', 'the', 'man', '.', 'It', 'was', 'not', 'a', 'surprise', ',', '3.5', 'an'];
const sent = () => Array.from({ length: Math.floor(rand() * 10) }, () => pick(words)).join(' ');
const FACTORY: Record<string, () => AnyMetric> = {
  classification: () => classificationMetric({ numClasses: 5 }) as unknown as AnyMetric,
  perplexity: () => perplexityMetric() as unknown as AnyMetric,
  bleu: () => bleuMetric() as unknown as AnyMetric,
  rouge: () => rougeMetric() as unknown as AnyMetric,
  squad: () => squadMetric() as unknown as AnyMetric,
};
const DATA: Record<string, { inputs: unknown[] }> = {
  classification: { inputs: Array.from({ length: 120 }, () => ({ label: Math.floor(rand() * 5), predicted: Math.floor(rand() * 5) })) },
  perplexity: { inputs: Array.from({ length: 120 }, () => ({ nllSum: 17 * rand() + 1, tokens: 1 + Math.floor(rand() * 9) })) },
  bleu: { inputs: Array.from({ length: 120 }, () => ({ hypothesis: sent(), references: [sent() || 'x', sent()] })) },
  rouge: { inputs: Array.from({ length: 120 }, () => ({ prediction: sent(), references: [sent(), sent()] })) },
  squad: { inputs: Array.from({ length: 120 }, () => ({ prediction: sent(), answers: [sent(), sent()] })) },
};

for (const [name, { inputs }] of Object.entries(DATA)) {
  test(`${name}: 1..5 JSON-shipped worker states merged in any order = one process, bit for bit`, () => {
    const metric = FACTORY[name]();
    checkMergeExact(metric, inputs);
    // The same through mergeStates, as the coordinator calls it.
    const shards = randomSplit(inputs, 3, rng(1)).map((xs) => JSON.parse(JSON.stringify(xs.reduce((s, x) => metric.update(s, x), metric.init()))));
    assert.deepStrictEqual(metric.compute(mergeStates(metric, shards)), evaluate(metric, inputs));
  });
}

test('every metric the registry can build has merge data in this test', () => {
  const built = new Set(GENERATION_METRICS.map((n) => generationEntry(n).create().name));
  for (const n of built) assert.ok(n in DATA, n);
});
