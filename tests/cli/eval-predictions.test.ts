/**
 * `ringtune eval --predictions` and `ringtune classify --input/--output`, end to end through the real
 * command line. Every classification number eval reports (accuracy, per class, macro / micro /
 * weighted P/R/F1, the confusion matrix) is recomputed here from the predictions file alone by an
 * independent implementation (plain loops over label-name pairs, sklearn's conventions written out
 * below) and must match exactly; classify's labels must be eval's predicted labels for the same texts,
 * texts longer than the model's positions included.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { initBackend } from '../../src/model/backend.ts';
import { createModelDir } from '../../src/model/create.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin', 'ringtune.js');
const LABELS = ['neg', 'pos', 'mid', 'unused'];
const WORDS = ['great', 'awful', 'so-so', 'day', 'film', 'trip', 'bright', 'gloomy', 'fine', 'plain', 'odd'];

function cli(args: string[], input?: string) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, timeout: 180_000, env: { ...process.env, RINGTUNE_THREADS: '1' } });
}

// A random-weight 4-label classifier: its predictions are spread over several classes, and no
// example is labelled `unused` (a class sklearn leaves out of the macro mean unless predicted).
const setup = (async () => {
  await initBackend(undefined, () => {});
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-preds-'));
  const model = join(dir, 'model');
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: model, task: 'classification', labels: LABELS, seed: 7 });
  const rng = new Rng(3);
  // Every 9th text is longer than the model's 128 positions: eval (--max-seq-len 128) and classify
  // must cut it by the same rule to agree.
  const words = (n: number) => [...Array(n)].map(() => WORDS[rng.int(WORDS.length)]).join(' ');
  const texts = [...Array(57)].map((_, i) => (i === 5 ? '--> Undervalued Company' : i % 9 === 0 ? words(150 + rng.int(40)) : words(2 + rng.int(12))));
  const records = texts.map((text, i) => ({ id: `r${i}`, text, label: LABELS[i % 3] }));
  writeFileSync(join(dir, 'data.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const tok = await Tokenizer.fromDir(model);
  assert.ok(texts.filter((x) => tok.encode(x).length > 128).length >= 6, 'long texts are over max length');
  return { dir, model, texts };
})();
after(async () => rmSync((await setup).dir, { recursive: true, force: true }));

interface Line { id: string; label: string; predicted: string; scores: Record<string, number>; loss: number }

/** Precision, recall, F1 per label and their averages from (true, predicted) name pairs, as sklearn (zero_division=0, labels=None). */
function independentMetrics(pairs: Array<[string, string]>, labelOrder: string[]) {
  const count = (f: (t: string, p: string) => boolean) => pairs.filter(([t, p]) => f(t, p)).length;
  const matrix = labelOrder.map((t) => labelOrder.map((p) => count((a, b) => a === t && b === p)));
  const per = labelOrder.map((c) => {
    const tp = count((t, p) => t === c && p === c);
    const support = count((t) => t === c);
    const predicted = count((_t, p) => p === c);
    return {
      label: c, support, predicted,
      precision: predicted === 0 ? 0 : tp / predicted,
      recall: support === 0 ? 0 : tp / support,
      // 2PR/(P+R) with P = tp/pred, R = tp/support simplifies to 2tp/(support+pred) (sklearn >= 1.3 form).
      f1: support + predicted === 0 ? 0 : (2 * tp) / (support + predicted),
    };
  });
  const n = pairs.length;
  const correct = count((t, p) => t === p);
  // sklearn labels=None: the macro mean runs over labels present in y_true or y_pred only.
  const seen = per.filter((c) => c.support > 0 || c.predicted > 0);
  const avg = (key: 'precision' | 'recall' | 'f1') => {
    let s = 0;
    for (const c of seen) s += c[key];
    return s / seen.length;
  };
  const weighted = (key: 'precision' | 'recall' | 'f1') => {
    let s = 0;
    for (const c of per) s += c[key] * c.support;
    return s / n;
  };
  return {
    accuracy: correct / n, matrix, per,
    macro: { precision: avg('precision'), recall: avg('recall'), f1: avg('f1') },
    // Single-label: every example is one true and one predicted label, so micro P = R = F1 = accuracy.
    micro: { precision: correct / n, recall: correct / n, f1: correct / n },
    weighted: { precision: weighted('precision'), recall: weighted('recall'), f1: weighted('f1') },
  };
}

test('eval --predictions: every reported classification number is recomputed exactly from the file', async () => {
  const { dir, model, texts } = await setup;
  const preds = join(dir, 'preds.jsonl');
  const r = cli(['eval', '--model', model, '--data', join(dir, 'data.jsonl'), '--format', 'label', '--batch', '5', '--predictions', preds]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const lines: Line[] = readFileSync(preds, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  // One line per example, in data order, named by file:line.
  assert.equal(lines.length, texts.length);
  lines.forEach((l, i) => assert.equal(l.id, `${join(dir, 'data.jsonl')}:${i + 1}`));
  for (const l of lines) {
    assert.deepEqual(Object.keys(l.scores), LABELS);
    const best = Object.entries(l.scores).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    assert.equal(l.predicted, best, `${l.id}: predicted is the top score`);
    assert.ok(Math.abs(Object.values(l.scores).reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.ok(Math.abs(l.loss + Math.log(l.scores[l.label])) < 1e-4, `${l.id}: loss is -log p(label)`);
  }
  const predictedSet = new Set(lines.map((l) => l.predicted));
  assert.ok(predictedSet.size >= 2, `a matrix worth checking: predicted ${[...predictedSet]}`);

  const m = independentMetrics(lines.map((l) => [l.label, l.predicted]), LABELS);
  const c = report.classification;
  assert.deepEqual(c.labels, LABELS);
  assert.equal(c.count, texts.length);
  assert.deepEqual(c.confusion_matrix, m.matrix);
  assert.deepEqual(c.per_class, m.per.map(({ label, precision, recall, f1, support, predicted }) => ({ label, precision, recall, f1, support, predicted })));
  assert.deepEqual(c.macro, m.macro);
  assert.deepEqual(c.micro, m.micro);
  assert.deepEqual(c.weighted, m.weighted);
  assert.equal(c.accuracy, m.accuracy);
  // The flat numbers (what early stopping and metrics.jsonl read) agree with the block.
  assert.equal(report.accuracy, m.accuracy);
  assert.equal(report.f1_macro, m.macro.f1);
  assert.equal(report.precision_macro, m.macro.precision);
  assert.equal(report.recall_macro, m.macro.recall);
  assert.equal(report.f1_micro, m.micro.f1);
  // The mean per-example loss is the reported loss, to float32 rounding of the batch sums.
  const meanLoss = lines.reduce((a, l) => a + l.loss, 0) / lines.length;
  assert.ok(Math.abs(meanLoss - report.loss) < 1e-5 * report.loss, `${meanLoss} vs ${report.loss}`);

  // An existing predictions file is never replaced silently.
  const again = cli(['eval', '--model', model, '--data', join(dir, 'data.jsonl'), '--format', 'label', '--predictions', preds]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /--predictions .*preds\.jsonl exists; pass --overwrite/);
  assert.equal(readFileSync(preds, 'utf8').trim().split('\n').length, texts.length);

  // classify --input FILE --output FILE (plain text, one per line, a `--` text included) gives eval's labels.
  const textFile = join(dir, 'texts.txt');
  writeFileSync(textFile, texts.join('\n') + '\n');
  const out = join(dir, 'classified.jsonl');
  const f = cli(['classify', '--model', model, '--input', textFile, '--output', out, '--batch', '5']);
  assert.equal(f.status, 0, f.stderr);
  const fromFile = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(fromFile.map((x) => x.text), texts);
  assert.deepEqual(fromFile.map((x) => x.label), lines.map((l) => l.predicted));

  // JSONL on stdin to stdout: named by the records' ids.
  const s = cli(['classify', '--model', model, '--input', '-', '--batch', '5'], readFileSync(join(dir, 'data.jsonl'), 'utf8'));
  assert.equal(s.status, 0, s.stderr);
  const fromStdin = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(fromStdin.map((x) => x.id), texts.map((_, i) => `r${i}`));
  assert.deepEqual(fromStdin.map((x) => x.label), lines.map((l) => l.predicted));

  const refuse = cli(['classify', '--model', model, '--input', textFile, '--output', out]);
  assert.equal(refuse.status, 1);
  assert.match(refuse.stderr, /--output .*classified\.jsonl exists; pass --overwrite/);
});

test('eval --format label on a causal LM (and text on a classifier) is refused, not scored through a random head', async () => {
  const { dir, model } = await setup;
  const lm = join(dir, 'lm');
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: lm, seed: 1 });
  const asCls = cli(['eval', '--model', lm, '--data', join(dir, 'data.jsonl'), '--format', 'label']);
  assert.equal(asCls.status, 1);
  assert.match(asCls.stderr, /lm is a causal language model \(GPT2LMHeadModel\): --format label evaluates a sequence classifier; use --format text/);
  const asLm = cli(['eval', '--model', model, '--data', join(dir, 'data.jsonl'), '--format', 'text']);
  assert.equal(asLm.status, 1);
  assert.match(asLm.stderr, /model is a sequence classifier \(GPT2ForSequenceClassification\): --format text evaluates a causal language model; use --format label/);
  assert.equal(asCls.stdout + asLm.stdout, '');
});
