/**
 * Job data spec -> tokenised train and eval examples. Bad records fail the run (naming file, line and
 * field) or are skipped and counted (`on_bad_record: skip`). Without an eval file, a deterministic
 * share of the training file (seeded) is held out. An empty dataset is an error before training starts.
 */
import type { CompiledJob } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { Rng } from '../util/rng.ts';
import { ExampleBuilder, pack, type ClsExample, type LmExample } from './examples.ts';
import { DataError, formatBad, readRecords, type BadRecord, type RawRecord } from './records.ts';

export type Example = LmExample | ClsExample;

/**
 * The examples a trainer indexes: an array (prepared in memory) or a cache split read from disk one
 * example at a time (example-store.ts), so a rank holds only the examples of its current step.
 */
export interface ExampleSource<E extends Example = Example> {
  readonly length: number;
  at(i: number): E | undefined;
  slice(start?: number, end?: number): E[];
}

/** What the training checks and the batch plan need of prepared data (in memory or cached). */
export interface PreparedSizes {
  train: { readonly length: number };
  eval: { readonly length: number };
  labels?: string[];
}

export interface PreparedData<E extends Example = Example> {
  train: E[];
  eval: E[];
  /** Classification label names, index = id. */
  labels?: string[];
  skipped: BadRecord[];
}

/** Label names from the training records: the model's own labels when it has real ones, else sorted. */
export function labelSet(records: RawRecord[], field: string, modelLabels?: string[]): string[] {
  if (modelLabels && !modelLabels.every((l) => /^LABEL_\d+$/.test(l))) return modelLabels;
  const seen = new Set<string>();
  for (const r of records) {
    const v = r.value[field];
    if (typeof v === 'string' || typeof v === 'number') seen.add(String(v));
  }
  return [...seen].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

export async function prepareData(job: CompiledJob, tok: Tokenizer, modelLabels?: string[]): Promise<PreparedData> {
  const d = job.data;
  const builder = new ExampleBuilder(tok, d.format, d.fields, d.maxSeqLen, d.addSpecialTokens);
  const skipped: BadRecord[] = [];
  const fail = (b: BadRecord) => {
    if (d.onBadRecord === 'fail') throw new DataError(b, ` (to skip bad records, ${d.skipBadRecordsHint})`);
    skipped.push(b);
  };

  const trainFile = await readRecords(d.trainPath, d.maxRecordBytes);
  const evalFile = d.evalPath ? await readRecords(d.evalPath, d.maxRecordBytes) : undefined;

  const labels = job.task === 'classification' ? labelSet(trainFile.records, d.fields.label, modelLabels) : undefined;
  const label2id = new Map((labels ?? []).map((l, i) => [l, i]));
  // No labels at all means no usable records: the per-record errors (or the empty-set error) say more.
  if (labels && labels.length === 1) {
    throw new InputError(`${d.trainPath}: classification needs at least 2 distinct labels in field "${d.fields.label}", found only "${labels[0]}"`);
  }

  // Tokenising a large file takes a while; yielding now and then keeps heartbeats flowing meanwhile.
  // Lines the reader already judged bad (malformed JSON, ...) are failed in line order with the
  // records' own problems, so the error names the file's first bad line whatever its kind.
  const build = async (file: string, { records, bad }: { records: RawRecord[]; bad: BadRecord[] }): Promise<Example[]> => {
    const out: Example[] = [];
    let b = 0;
    for (const [i, r] of records.entries()) {
      if (i % 256 === 255) await new Promise<void>((res) => setImmediate(res));
      for (; b < bad.length && bad[b].line < r.line; b++) fail(bad[b]);
      const source = `${file}:${r.line}`;
      const res = job.task === 'classification' ? builder.cls(r, source, label2id) : builder.lm(r, source);
      if ('bad' in res) fail({ file, line: r.line, ...res.bad });
      else if ('label' in res.ok || res.ok.tokens.length >= 2) out.push(res.ok);
      else fail({ file, line: r.line, reason: 'encodes to fewer than 2 tokens: nothing to predict' });
    }
    for (; b < bad.length; b++) fail(bad[b]);
    return out;
  };

  let train = await build(d.trainPath, trainFile);
  let evalSet = evalFile ? await build(d.evalPath!, evalFile) : [];
  if (!evalFile && d.evalFraction > 0 && train.length >= 2) {
    const order = new Rng(job.training.seed ^ 0x5eed).shuffle([...train.keys()]);
    const nEval = Math.max(1, Math.round(train.length * d.evalFraction));
    const held = new Set(order.slice(0, nEval));
    evalSet = train.filter((_, i) => held.has(i));
    train = train.filter((_, i) => !held.has(i));
  }
  if (d.packing && job.task === 'causal-lm') {
    train = pack(train as LmExample[], d.maxSeqLen);
    evalSet = pack(evalSet as LmExample[], d.maxSeqLen);
  }
  if (train.length === 0) {
    const why = skipped.length ? ` (${skipped.length} bad records skipped; first: ${formatBad(skipped[0])})` : '';
    throw new InputError(`${d.trainPath}: the training set is empty${why}`);
  }
  return { train, eval: evalSet, labels, skipped };
}

/**
 * Every step takes `training.global_batch` examples of one epoch: a training set smaller than that
 * would silently make each step the whole set, and the batch size in the job a fiction.
 */
export function checkBatchFits(job: CompiledJob, data: PreparedSizes): void {
  const n = data.train.length;
  if (job.training.globalBatch <= n) return;
  const packed = job.data.packing && job.task === 'causal-lm' ? ' (rows after packing)' : '';
  const held = data.eval.length && !job.data.evalPath ? `, after holding out ${data.eval.length} for eval (data.eval_fraction ${job.data.evalFraction})` : '';
  throw new InputError(
    `${job.jobFile}: training.global_batch ${job.training.globalBatch} is larger than the ${n} training examples${packed} in ${job.data.trainPath}${held}; ` +
    `set training.global_batch to at most ${n}, or add data`,
  );
}
