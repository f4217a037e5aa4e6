/**
 * Bad input gets an error that names file, line and field, before anything is written; existing
 * outputs and checkpoints stay byte-identical. `on_bad_record: skip` skips and counts instead.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadJobFile } from '../../src/config/compile.ts';
import { InputError } from '../../src/errors.ts';
import { train } from '../../src/train/loop.ts';
import { baseModel, clsLines, job, lmLines, quiet, ready, tempDir, writeLines } from './fixtures.ts';

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      if ((await stat(p)).isDirectory()) await walk(p);
      else out.set(p, createHash('sha256').update(await readFile(p)).digest('hex'));
    }
  };
  await walk(dir);
  return out;
}

test('each bad record names file, line and field; existing outputs and checkpoints are untouched', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2', 'classification');
  await writeLines(join(dir, 'good.jsonl'), clsLines(40, 1));
  const spec = (train: string, extra: Record<string, unknown> = {}) => job(dir, {
    model, data: { train, format: 'label', eval_fraction: 0, max_record_bytes: 2000, ...extra },
    training: { max_steps: 2, global_batch: 8 }, checkpoint: { every_n_steps: 1 },
  });
  await train(spec('good.jsonl'), quiet);
  const before = await snapshot(join(dir, 'out'));
  assert.ok([...before.keys()].some((p) => p.includes('checkpoints')));

  const good = clsLines(6, 2);
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['malformed.jsonl', [...good, '{"text": "oops", "label": ', ...good].join('\n'), /malformed\.jsonl:7: malformed JSON/],
    ['missing.jsonl', [...good, '{"label": "pos"}'].join('\n'), /missing\.jsonl:7: field "text": missing/],
    ['empty-text.jsonl', [...good, '{"text": "   ", "label": "pos"}'].join('\n'), /empty-text\.jsonl:7: field "text": is empty/],
    ['wrong-type.jsonl', [...good, '{"text": 12, "label": "pos"}'].join('\n'), /wrong-type\.jsonl:7: field "text": must be a string/],
    ['not-object.jsonl', [...good, '[1, 2]'].join('\n'), /not-object\.jsonl:7: each line must be a JSON object/],
    ['latin1.jsonl', Buffer.concat([Buffer.from(good.join('\n') + '\n'), Buffer.from([0x7b, 0x22, 0x74, 0xe9, 0x22, 0x7d, 0x0a])]), /latin1\.jsonl:7: not valid UTF-8/],
    ['huge.jsonl', [...good, JSON.stringify({ text: 'x'.repeat(3000), label: 'pos' })].join('\n'), /huge\.jsonl:7: line of \d+ bytes exceeds data\.max_record_bytes \(2000\)/],
  ];
  for (const [name, content, pattern] of cases) {
    await writeFile(join(dir, name), content);
    await assert.rejects(train(spec(name), { ...quiet, overwrite: true }), (err: Error) => {
      assert.ok(err instanceof InputError, `${name}: ${err.name} ${err.message}`);
      assert.match(err.message, pattern);
      return true;
    });
  }
  // An eval file with a label the training set does not have.
  await writeLines(join(dir, 'eval-bad.jsonl'), [clsLines(1, 3)[0], JSON.stringify({ text: 'so so', label: 'meh' })]);
  await assert.rejects(train(spec('good.jsonl', { eval: 'eval-bad.jsonl' }), { ...quiet, overwrite: true }),
    /eval-bad\.jsonl:2: field "label": unknown label "meh" \(known: neg, pos\)/);
  // A dataset of nothing but bad records, skipped, is an empty dataset: still an error before training.
  // "first" is the first bad line, though the reader finds line 2's malformed JSON before line 1 is checked.
  await writeLines(join(dir, 'all-bad.jsonl'), ['{"text": ""}', 'nope']);
  await assert.rejects(train(spec('all-bad.jsonl', { on_bad_record: 'skip' }), { ...quiet, overwrite: true }),
    /all-bad\.jsonl: the training set is empty \(2 bad records skipped; first: .*all-bad\.jsonl:1: field "text": is empty\)/);
  // Starting a fresh run over existing checkpoints needs --resume or --overwrite.
  await assert.rejects(train(spec('good.jsonl'), quiet), /already holds checkpoints: pass --resume .* or --overwrite/);

  assert.deepEqual(await snapshot(join(dir, 'out')), before);
});

test('on_bad_record: skip trains on the good records and reports how many were skipped', async (t) => {
  await ready;
  const dir = await tempDir(t);
  const model = await baseModel(dir, 'gpt2');
  await writeLines(join(dir, 'train.jsonl'), [...lmLines(20, 1), '{"text": ""}', '{broken', ...lmLines(5, 2)]);
  const r = await train(job(dir, {
    model, data: { train: 'train.jsonl', format: 'text', on_bad_record: 'skip', eval_fraction: 0 },
    training: { max_steps: 1, global_batch: 8 },
  }), quiet);
  assert.deepEqual(r.data, { train: 25, eval: 0, skipped: 2 });
  const report = JSON.parse(await readFile(join(dir, 'out', 'eval_report.json'), 'utf8'));
  assert.equal(report.data.skipped_bad_records, 2);
});

test('the job spec lists every problem at once with its path; unknown keys are rejected', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'job.yaml'), [
    'model: m', 'data:', '  train: t.jsonl', '  format: txt', '  max_seq_len: -4',
    'training:', '  lr: 0', '  epoch: 2', 'colour: blue',
  ].join('\n'));
  await assert.rejects(loadJobFile(join(dir, 'job.yaml')), (err: Error) => {
    assert.ok(err instanceof InputError);
    for (const s of ['data.format:', 'data.max_seq_len:', 'training.lr:', 'training: Unrecognized key', '(epoch)', '(colour)', 'training.epochs: set epochs or max_steps']) {
      assert.ok(err.message.includes(s), `"${s}" not in:\n${err.message}`);
    }
    return true;
  });
  await writeFile(join(dir, 'bad.yaml'), 'model: m\ndata:\n  train: [unclosed\n');
  await assert.rejects(loadJobFile(join(dir, 'bad.yaml')), /bad\.yaml:\d+: invalid YAML/);
});
