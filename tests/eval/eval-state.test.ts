/**
 * eval/eval-state.ts: an evaluation split over ranks, each shard's state sent as JSON and merged in
 * any order, gives the single-pass result bit for bit. Loss sums are chosen (1e16 next to 0.1) so that
 * plain float addition depends on the order; the expected loss comes from an independent exact sum in
 * BigInt. Malformed states from the wire are InputErrors that name where they came from and the field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.ts';
import {
  addClassification, addGeneration, addLoss, emptyEvalState, evalResult, mergeEvalStates, parseEvalState, type EvalState,
} from '../../src/eval/eval-state.ts';
import { rng, shuffle } from './helpers.ts';

/** (loss sum, tokens) per batch. Sums of order 1e16 next to 0.1: the ulp at 1e16 is 2, so small terms round away. */
const LM_BATCHES: Array<[number, number]> = [
  [1e16, 40], [0.1, 3], [0.2, 3], [0.3, 5], [1, 1], [1, 1], [1, 2], [7.25, 9], [1e16, 40], [0.7, 4], [1.5, 2], [0.1, 1], [3e-3, 1],
];
const WHERE = 'EvalReport from rank 2 for step 40';

/** Exact sum of doubles as an integer multiple of 2^-80, rounded once to a double (BigInt, independent of exact-sum.ts). */
function bigSum(xs: number[]): number {
  const scale = 2 ** 80;
  const big = xs.reduce((acc, x) => {
    assert.ok(Number.isInteger(x * scale), `${x} is not a multiple of 2^-80`);
    return acc + BigInt(x * scale);
  }, 0n);
  return Number(big) / scale; // Number(bigint) rounds to nearest, ties to even
}

const lmState = (batches: Array<[number, number]>) => {
  const s = emptyEvalState();
  for (const [sum, n] of batches) addLoss(s, sum, n);
  return s;
};
const wire = (s: EvalState, rank = 0) => parseEvalState(JSON.stringify(s), `EvalReport from rank ${rank} for step 40`);
const fold = (states: EvalState[]) => states.reduce((a, b) => mergeEvalStates(a, b));
const permutations = <T>(xs: T[]): T[][] => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p])));

test('causal LM: shards merged in every order == one pass == the BigInt reference, while a plain float sum depends on order', () => {
  const tokens = LM_BATCHES.reduce((a, [, n]) => a + n, 0);
  const expectedLoss = bigSum(LM_BATCHES.map(([s]) => s)) / tokens;
  const single = evalResult(lmState(LM_BATCHES));
  assert.deepStrictEqual(single, { loss: expectedLoss, perplexity: Math.exp(expectedLoss), tokens });

  const rand = rng(10);
  const naive = new Set<number>();
  for (let trial = 0; trial < 8; trial++) {
    const order = shuffle(LM_BATCHES, rand);
    naive.add(order.reduce((a, [s]) => a + s, 0) / tokens);
    const cuts = [4, 9];
    const shards = [order.slice(0, cuts[0]), order.slice(cuts[0], cuts[1]), order.slice(cuts[1])].map((b, rank) => wire(lmState(b), rank));
    for (const p of permutations(shards)) assert.deepStrictEqual(evalResult(fold(p)), single);
    assert.deepStrictEqual(evalResult(mergeEvalStates(shards[0], mergeEvalStates(shards[1], shards[2]))), single); // another tree
  }
  assert.ok(naive.size > 1, 'the data must make plain float sums order-dependent, or this test shows nothing');
  assert.ok([...naive].some((v) => v !== expectedLoss));
});

test('merge leaves both inputs as they were (states arrive from the network and may be merged again)', () => {
  const a = lmState(LM_BATCHES.slice(0, 5));
  const b = lmState(LM_BATCHES.slice(5));
  const [a0, b0] = [structuredClone(a), structuredClone(b)];
  mergeEvalStates(a, b);
  assert.deepStrictEqual([a, b], [a0, b0]);
});

test('classification: confusion counts and example losses merge exactly; accuracy and F1 by hand', () => {
  // (predicted, label, example cross-entropy); 3 classes.
  const examples: Array<[number, number, number]> = [
    [0, 0, 0.1], [0, 0, 0.2], [1, 0, 2.5], [1, 1, 0.3], [1, 1, 1e16], [2, 1, 3.25], [2, 2, 0.1], [0, 2, 4], [2, 2, 0.7], [1, 1, 0.5],
  ];
  const state = (xs: typeof examples) => {
    const s = emptyEvalState({ numClasses: 3 });
    for (const [p, l, ce] of xs) {
      addClassification(s, p, l);
      addLoss(s, ce, 1);
    }
    return s;
  };
  const single = evalResult(state(examples));
  // 7 of 10 right. Per class (tp, support, predicted): 0 (2,3,3), 1 (3,4,4), 2 (2,3,3); F1 = 2tp/(support+predicted).
  const f1 = [4 / 6, 6 / 8, 4 / 6];
  const precision = [2 / 3, 3 / 4, 2 / 3];
  assert.equal(single.accuracy, 0.7);
  assert.equal(single.f1_micro, 0.7);
  assert.equal(single.examples, 10);
  assert.equal(single.f1_macro, (f1[0] + f1[1] + f1[2]) / 3);
  assert.equal(single.precision_macro, (precision[0] + precision[1] + precision[2]) / 3);
  assert.equal(single.loss, bigSum(examples.map((e) => e[2])) / 10);
  assert.deepEqual(Object.keys(single).sort(), ['accuracy', 'examples', 'f1_macro', 'f1_micro', 'loss', 'precision_macro', 'recall_macro']);

  const rand = rng(3);
  for (let trial = 0; trial < 5; trial++) {
    const order = shuffle(examples, rand);
    const shards = [order.slice(0, 3), order.slice(3, 4), order.slice(4)].map((xs, rank) => wire(state(xs), rank));
    for (const p of permutations(shards)) assert.deepStrictEqual(evalResult(fold(p)), single);
  }
});

test('generation metrics merge exactly too (their float sums are exact sums)', () => {
  const pairs: Array<[string, string]> = [
    ['the cat sat on the mat', 'the cat sat on the mat'], ['a dog ran', 'the dog ran to the log'], ['the owl', 'an owl slept by the roof'],
    ['fox', 'the fox looked at the hill'], ['the cow sat on the box', 'the cow sat on the bed'],
  ];
  const state = (ps: typeof pairs) => {
    const s = emptyEvalState({ generation: ['bleu', 'rouge', 'exact_match'] });
    for (const [h, r] of ps) addGeneration(s, h, r);
    addLoss(s, 0.1 * ps.length, ps.length);
    return s;
  };
  const single = evalResult(state(pairs));
  for (const key of ['bleu', 'rouge1', 'rouge2', 'rougeL', 'exact_match', 'token_f1']) assert.ok(Number.isFinite(single[key]), key);
  assert.equal(single.exact_match, 20); // 1 of 5, x100
  const shards = [pairs.slice(0, 2), pairs.slice(2, 3), pairs.slice(3)].map((ps, rank) => wire(state(ps), rank));
  for (const p of permutations(shards)) assert.deepStrictEqual(evalResult(fold(p)), single);
});

test('a non-finite batch loss makes the loss NaN without crashing, and the state stays JSON', () => {
  const s = lmState([[2, 4]]);
  addLoss(s, NaN, 4);
  addLoss(s, Infinity, 2);
  assert.equal(s.nonFinite, 2);
  assert.equal(s.loss.tokens, 10);
  const json = JSON.stringify(s);
  assert.doesNotMatch(json, /null|NaN|Infinity/); // JSON would turn NaN into null and lose it
  const merged = mergeEvalStates(wire(s), wire(lmState([[1, 2]])));
  const r = evalResult(merged);
  assert.ok(Number.isNaN(r.loss) && Number.isNaN(r.perplexity));
  assert.equal(r.tokens, 12);
  // An all-finite state stays finite: nonFinite is a count, not a flag that leaks across steps.
  assert.equal(evalResult(lmState([[3, 2]])).loss, 1.5);
});

test('parseEvalState refuses a malformed state with an InputError naming where it came from and the field', () => {
  const ok = JSON.stringify(lmState([[1, 1]]));
  const cls = (numClasses: number, confusion: number[][]) =>
    JSON.stringify({ loss: { nllSum: [], tokens: 0 }, nonFinite: 0, classification: { numClasses, confusion } });
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"loss": ', /eval state is not JSON/],
    ['not an object', '[]', /field loss is missing/],
    ['missing loss', '{"nonFinite":0}', /field loss is missing or malformed/],
    ['negative nonFinite', ok.replace('"nonFinite":0', '"nonFinite":-1'), /field nonFinite is missing or malformed/],
    ['fractional nonFinite', ok.replace('"nonFinite":0', '"nonFinite":0.5'), /field nonFinite/],
    ['loss sum not numbers', '{"loss":{"nllSum":["1"],"tokens":1},"nonFinite":0}', /perplexity: state\.nllSum is not an exact sum/],
    ['negative token count', '{"loss":{"nllSum":[1],"tokens":-3},"nonFinite":0}', /perplexity: tokens must be a non-negative integer, got -3/],
    ['unknown generation metric', '{"loss":{"nllSum":[],"tokens":0},"nonFinite":0,"generation":{"mrr":{}}}', /field generation\.mrr is missing or malformed/],
    ['numClasses vs confusion rows', cls(3, [[1, 0], [0, 1]]), /classification: cannot merge states with different confusion rows \(3 vs 2\)/],
    ['ragged confusion', cls(2, [[1, 0], [0]]), /confusion columns \(2 vs 1\)/],
    ['negative count', cls(2, [[1, -1], [0, 1]]), /confusion count must be a non-negative integer, got -1/],
  ];
  for (const [what, json, message] of cases) {
    assert.throws(() => parseEvalState(json, WHERE), (err: Error) => {
      assert.ok(err instanceof InputError, `${what}: ${err.name}: ${err.message}`);
      assert.ok(err.message.startsWith(`${WHERE}: `), `${what}: ${err.message}`);
      assert.match(err.message, message, what);
      return true;
    });
  }
  assert.deepStrictEqual(parseEvalState(ok, WHERE), lmState([[1, 1]]));
});

test('parseEvalState: a bad numClasses names where the state came from', () => {
  for (const numClasses of [0, '2', 2.5]) {
    const json = JSON.stringify({ loss: { nllSum: [], tokens: 0 }, nonFinite: 0, classification: { numClasses, confusion: [[0, 0], [0, 0]] } });
    assert.throws(() => parseEvalState(json, WHERE), (err: Error) => err instanceof InputError && err.message.startsWith(`${WHERE}: `) && /numClasses/.test(err.message), String(numClasses));
  }
});

test('states from differently configured evaluations do not merge', () => {
  const lm = lmState([[1, 1]]);
  const cls = emptyEvalState({ numClasses: 2 });
  assert.throws(() => mergeEvalStates(lm, cls), (err: Error) => err instanceof InputError && /disagree on classification/.test(err.message));
  assert.throws(() => mergeEvalStates(cls, emptyEvalState({ numClasses: 3 })), (err: Error) => err instanceof InputError && /2 and 3 classes/.test(err.message));
  assert.throws(() => mergeEvalStates(emptyEvalState({ generation: ['bleu'] }), emptyEvalState({ generation: ['rouge'] })),
    (err: Error) => err instanceof InputError && /generation metrics \(bleu vs rouge\)/.test(err.message));
  assert.throws(() => addClassification(lm, 0, 0), /without numClasses/);
});
