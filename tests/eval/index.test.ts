// The registry, and the distributed-evaluation contract for every registered metric: states made on
// separate "workers", sent as JSON, merged in any order, compute to exactly the single-process result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetric, evaluate, mergeStates, METRICS, type AnyMetric } from '../../src/eval/index.ts';
import { InputError } from '../../src/errors.ts';
import { checkMergeExact, randomSplit, rng } from './helpers.ts';

test('names map to metrics; aliases share one implementation', () => {
  const names = (n: string, o: Record<string, unknown> = {}) => createMetric(n, o).name;
  for (const n of ['classification', 'accuracy', 'f1', 'precision', 'recall']) assert.equal(names(n, { numClasses: 2 }), 'classification');
  assert.equal(names('squad'), 'squad');
  assert.equal(names('exact_match'), 'squad');
  for (const n of ['perplexity', 'bleu', 'rouge', 'mrr']) assert.equal(names(n), n);
});

test('an unknown name is an InputError that lists the valid names', () => {
  assert.throws(() => createMetric('blue'), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /unknown metric "blue"/);
    for (const n of Object.keys(METRICS)) assert.ok(e.message.includes(n), `message lists ${n}`);
    return true;
  });
});

test('bad options are one InputError listing every problem', () => {
  assert.throws(() => createMetric('f1', {}), /option numClasses is required/);
  assert.throws(() => createMetric('bleu', { lowercase: 'yes', tokenise: '13a' }), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /lowercase must be a boolean/);
    assert.match(e.message, /unknown option "tokenise"/);
    assert.match(e.message, /accepted options: tokenize, lowercase/);
    return true;
  });
  assert.throws(() => createMetric('mrr', { k: -1 }), InputError);
});

test('mergeStates of no states is the empty state; of one state is that state', () => {
  const m = createMetric('mrr');
  assert.deepEqual(mergeStates(m, []), m.init());
  const s = m.update(m.init(), { ranked: [1, 2], relevant: [2] });
  assert.deepEqual(m.compute(mergeStates(m, [s])), m.compute(s));
});

// One small dataset per registered metric, and how results must agree after merging.
const rand = rng(42);
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
const words = ['The', 'dog', 'bit', 'the', 'man', '.', 'It', 'was', 'not', 'a', 'surprise', ',', '3.5', 'an'];
const sent = () => Array.from({ length: Math.floor(rand() * 10) }, () => pick(words)).join(' ');
const DATA: Record<string, { options?: Record<string, unknown>; inputs: unknown[] }> = {
  classification: { options: { numClasses: 5 }, inputs: Array.from({ length: 120 }, () => ({ label: Math.floor(rand() * 5), predicted: Math.floor(rand() * 5) })) },
  perplexity: { inputs: Array.from({ length: 120 }, () => ({ nllSum: 17 * rand() + 1, tokens: 1 + Math.floor(rand() * 9) })) },
  bleu: { inputs: Array.from({ length: 120 }, () => ({ hypothesis: sent(), references: [sent() || 'x', sent()] })) },
  rouge: { inputs: Array.from({ length: 120 }, () => ({ prediction: sent(), references: [sent(), sent()] })) },
  squad: { inputs: Array.from({ length: 120 }, () => ({ prediction: sent(), answers: [sent(), sent()] })) },
  mrr: { options: { k: 5 }, inputs: Array.from({ length: 120 }, () => ({ ranked: [...words].sort(() => rand() - 0.5), relevant: [pick(words)] })) },
};

for (const [name, { options, inputs }] of Object.entries(DATA)) {
  test(`${name}: 1..5 JSON-shipped worker states merged in any order = one process, bit for bit`, () => {
    const metric: AnyMetric = createMetric(name, options);
    checkMergeExact(metric, inputs);
    // The same through mergeStates, as the coordinator calls it.
    const shards = randomSplit(inputs, 3, rng(1)).map((xs) => JSON.parse(JSON.stringify(xs.reduce((s, x) => metric.update(s, x), metric.init()))));
    assert.deepStrictEqual(metric.compute(mergeStates(metric, shards)), evaluate(metric, inputs));
  });
}

test('every registered metric has merge data in this test', () => {
  const implementations = new Set(Object.keys(METRICS).map((n) => createMetric(n, METRICS[n].required ? { numClasses: 2 } : {}).name));
  assert.deepEqual([...implementations].sort(), Object.keys(DATA).sort());
});
