/**
 * Job YAML -> validated spec -> CompiledJob: defaults filled in, paths resolved against the job
 * file's folder, units in names. Nothing downstream reads raw YAML or environment variables.
 * Every problem is reported at once, each with its path (`training.lr: ...`). The looks at the
 * filesystem: output paths that a file is in the way of, and whether `model:` names an existing
 * directory (if not, and it reads as `org/name[@revision]`, it is a hub model: hub/hub-id.ts).
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { InputError } from '../errors.ts';
import type { BackendChoice } from '../model/backend-names.ts';
import type { Task } from '../model/config.ts';
import { LORA_DEFAULTS, type LoraOptions } from '../model/lora-config.ts';
import type { ScheduleName } from '../optim/lr-schedule.ts';
import { defaultBetas, type OptimizerKind } from '../optim/optimizer.ts';
import { hubRefOf, type HubRef } from '../hub/hub-id.ts';
import { checkMetricNames, resultKeys, type GenerationMetric } from '../eval/index.ts';
import { applyOverrides, originOf, type JobOverrides, type Origins } from './overrides.ts';
import { JobSchema, type JobSpec } from './schema.ts';

export type DataFormat = 'text' | 'prompt-completion' | 'messages' | 'label';

export interface CompiledJob {
  name: string;
  jobFile: string;
  /** `model:` as the job file wrote it (reports show this). */
  model: string;
  /**
   * `model:` resolved against the job folder. For a hub model (`hub` set) a directory only once
   * hub/resolve.ts resolveJobModel has run (or a launcher passed the snapshot it resolved).
   */
  modelDir: string;
  /** The hub model `model:` names, when no local directory of that name exists where the job was compiled. */
  hub?: HubRef;
  /** undefined = from the model's config.json (`architectures`), or by data format. */
  task: Task;
  backend: BackendChoice;
  /** Native engine threads per process; 'auto' = threadsFor's `auto` (all cores, or cores / workers locally). */
  threads: Threads;
  data: {
    trainPath: string;
    evalPath?: string;
    format: DataFormat;
    fields: { text: string; prompt: string; completion: string; messages: string; label: string };
    maxSeqLen: number;
    packing: boolean;
    /** data.add_special_tokens (src/data/examples.ts); always true for format label. */
    addSpecialTokens: boolean;
    evalFraction: number;
    onBadRecord: 'fail' | 'skip';
    /** What the user would type to skip bad records, in the words they used (flag, --set or YAML key). */
    skipBadRecordsHint: string;
    maxRecordBytes: number;
  };
  training: {
    epochs?: number;
    maxSteps?: number;
    globalBatch: number;
    microBatch: number;
    peakLr: number;
    schedule: ScheduleName;
    warmupSteps: number;
    minLrRatio: number;
    weightDecay: number;
    noDecay: Array<'biases' | 'norms' | 'embeddings'>;
    beta1: number;
    beta2: number;
    eps: number;
    /** training.optimizer; momentum, dampening and nesterov are sgd's (optim/sgd.ts). beta1/2: adam, adamw, lion. */
    optimizer: OptimizerKind;
    momentum: number;
    dampening: number;
    nesterov: boolean;
    gradClip: number;
    /** training.on_nonfinite (train-step.ts). */
    onNonFinite: 'fail' | 'skip_step';
    seed: number;
  };
  /** full: every parameter trains; lora: a frozen base with adapters (model/lora.ts). */
  method: 'full' | 'lora';
  /** Set exactly when method is lora; names are checked against the model family at setup. */
  lora?: LoraOptions;
  checkpoint: { dir: string; everyNSteps: number; keep: number };
  eval: {
    everyNSteps: number;
    metrics?: string[];
    /** The generation metrics among `metrics` (validated against task and format). */
    generationMetrics: GenerationMetric[];
    maxBatches?: number;
    generateMaxTokens: number;
    generateMaxExamples: number;
    earlyStopping?: { metric: string; patience: number; mode?: 'min' | 'max'; minDelta: number };
  };
  cluster: {
    workers: number;
    codec: 'fp32' | 'bf16' | 'fp16';
    heartbeatIntervalMs: number;
    heartbeatTimeoutMs: number;
    collectiveTimeoutMs: number;
    joinTimeoutMs: number;
    hashEveryNSteps: number;
    nats: { url?: string; token?: string; user?: string; password?: string; tls?: TlsPaths };
    ringTls?: TlsPaths;
    /** TCP connections per ring link (stripes, src/collective/stripes.ts); 1 = one connection. */
    ringConnections: number;
    /** The control-plane secret's file (auth.ts loadJobSecret), resolved against the job file. */
    secretFile?: string;
    progressTimeoutMs: number;
    /** Workers wait this long past their coordinator's silence for a restarted one (0: they abort). */
    coordinatorRecoveryMs: number;
  };
  /** elastic: (docs/reliability.md); minWorkers <= cluster.workers <= maxWorkers. */
  elastic: { minWorkers: number; maxWorkers: number; onLoss: 'shrink' | 'wait' | 'fail'; waitTimeoutMs: number };
  outputDir: string;
}

export type Threads = number | 'auto';

/**
 * The native engine's thread count for one process. Precedence: `explicit` (the --threads flag, which
 * also reads RINGTUNE_THREADS; the flag wins) > the job spec's `threads` > `auto`. 'auto' at any level
 * means `auto`, the caller's default: all cores for one process, cores / workers for `ringtune local`.
 */
export function threadsFor(explicit: Threads | undefined, fromJob: Threads | undefined, auto: number): number {
  const t = explicit ?? fromJob ?? 'auto';
  return t === 'auto' ? Math.max(1, Math.floor(auto)) : t;
}

/** Parses a --threads / RINGTUNE_THREADS value; errors name `source`. */
export function parseThreads(value: string, source: string): Threads {
  const v = value.trim();
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (v === '' || !Number.isInteger(n) || n < 1) throw new InputError(`${source}: expected a positive integer or "auto", got "${value}"`);
  return n;
}

export interface TlsPaths { caFile?: string; certFile?: string; keyFile?: string }

export class JobSpecError extends InputError {
  override readonly name: string = 'JobSpecError';
}

/** Where the values of a job came from, besides its file: command-line overrides and flags. */
export interface CompileOptions {
  /** Fields set by --set / --output, as typed (overrides.ts). */
  origins?: Origins;
  /** Fields a command's own flags fill (`ringtune eval`: data.on_bad_record -> --on-bad-record). */
  flags?: Readonly<Record<string, string>>;
}

/** One problem line, led by what the user typed when a flag set the field: `  --set training.lr=abc: training.lr: ...`. */
function problemLine(path: string, message: string, o: CompileOptions, keys: string[] = [path]): string {
  const typed = keys.map((k) => originOf(o.origins, k) ?? o.flags?.[k]).find((t) => t !== undefined);
  return `  ${typed ? `${typed}: ` : ''}${path}: ${message}`;
}

function formatIssues(source: string, issues: z.core.$ZodIssue[], o: CompileOptions): string {
  const lines = issues.map((i) => {
    const path = i.path.length ? i.path.join('.') : '(top level)';
    const unknown = i.code === 'unrecognized_keys' ? (i as { keys: string[] }).keys : undefined;
    const extra = unknown ? ` (${unknown.join(', ')})` : '';
    return problemLine(path, `${i.message}${extra}`, o, unknown ? unknown.map((k) => [...i.path, k].join('.')) : [path]);
  });
  return `${source}: ${issues.length} problem${issues.length === 1 ? '' : 's'} in the job spec:\n${lines.join('\n')}`;
}

/** How to skip bad records, said the way this job's on_bad_record was (or would be) given. */
function skipHint(o: CompileOptions): string {
  const flag = o.flags?.['data.on_bad_record'];
  if (flag) return `pass ${flag} skip`;
  if (originOf(o.origins, 'data.on_bad_record')) return 'pass --set data.on_bad_record=skip';
  return 'set data.on_bad_record: skip in the job spec, or pass --set data.on_bad_record=skip';
}

/** Validates a parsed spec object; relative paths resolve against `jobFile`'s folder. */
export function compileJob(raw: unknown, jobFile: string, o: CompileOptions = {}): CompiledJob {
  const parsed = JobSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new JobSpecError(formatIssues(jobFile, parsed.error.issues, o));
  const s: JobSpec = parsed.data;
  const base = dirname(resolve(jobFile));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const task: Task = s.task ?? (s.data.format === 'label' ? 'classification' : 'causal-lm');
  const problems: string[] = [];
  const problem = (path: string, message: string) => problems.push(problemLine(path, message, o));
  if (task === 'classification' && s.data.format !== 'label') problem('data.format', `task classification needs format "label", got "${s.data.format}"`);
  if (task === 'causal-lm' && s.data.format === 'label') problem('data.format', 'format "label" needs task classification');
  if (s.data.format === 'label' && !s.data.add_special_tokens) {
    problem('data.add_special_tokens', 'format "label" always encodes with the tokenizer\'s special tokens (the classifier reads [CLS] / the last token); remove add_special_tokens: false');
  }
  if (s.training.micro_batch > s.training.global_batch) problem('training.micro_batch', `${s.training.micro_batch} is larger than global_batch ${s.training.global_batch}`);
  checkOptimizer(s.training, problem);
  const method = typeof s.method === 'string' ? s.method : s.method.type;
  if (s.lora && method !== 'lora') problem('lora', `a lora section needs method: lora (method is "${method}")`);
  const outputDir = path(s.output);
  const checkpointDir = s.checkpoint.dir ? path(s.checkpoint.dir) : resolve(outputDir, 'checkpoints');
  const badOutput = notADirectory(outputDir);
  if (badOutput) problem('output', badOutput);
  // The default checkpoint.dir is under output: reported once, as output's problem, when that is bad.
  const badCheckpoints = (s.checkpoint.dir || !badOutput) && notADirectory(checkpointDir);
  if (badCheckpoints) problem('checkpoint.dir', `${badCheckpoints}${s.checkpoint.dir ? '' : ' (the default, under output)'}`);
  let generationMetrics: GenerationMetric[] = [];
  try {
    generationMetrics = checkMetricNames(s.eval.metrics, task, s.data.format);
    const stopOn = s.eval.early_stopping?.metric;
    const keys = resultKeys(task, generationMetrics);
    if (stopOn !== undefined && !keys.includes(stopOn)) problem('eval.early_stopping.metric', `"${stopOn}" is not computed for this job; available: ${keys.join(', ')}`);
  } catch (err) {
    problems.push(`  ${(err as Error).message}`);
  }
  checkElastic(s, problem);
  if (problems.length) throw new JobSpecError(`${jobFile}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the job spec:\n${problems.join('\n')}`);
  const betas = s.training.betas ?? defaultBetas(s.training.optimizer);
  const tls = (t?: { ca?: string; cert?: string; key?: string }): TlsPaths | undefined =>
    t && { caFile: t.ca && path(t.ca), certFile: t.cert && path(t.cert), keyFile: t.key && path(t.key) };
  return {
    name: s.name,
    jobFile: resolve(jobFile),
    model: s.model,
    modelDir: path(s.model),
    hub: hubRefOf(s.model, path(s.model)),
    task,
    backend: s.backend,
    threads: s.threads,
    data: {
      trainPath: path(s.data.train),
      evalPath: s.data.eval ? path(s.data.eval) : undefined,
      format: s.data.format,
      fields: s.data.fields,
      maxSeqLen: s.data.max_seq_len,
      packing: s.data.packing,
      addSpecialTokens: s.data.add_special_tokens,
      evalFraction: s.data.eval_fraction,
      onBadRecord: s.data.on_bad_record,
      skipBadRecordsHint: skipHint(o),
      maxRecordBytes: s.data.max_record_bytes,
    },
    training: {
      epochs: s.training.epochs,
      maxSteps: s.training.max_steps,
      globalBatch: s.training.global_batch,
      microBatch: s.training.micro_batch,
      peakLr: s.training.lr,
      schedule: s.training.schedule,
      warmupSteps: s.training.warmup_steps,
      minLrRatio: s.training.min_lr_ratio,
      weightDecay: s.training.weight_decay,
      noDecay: s.training.no_decay,
      beta1: betas[0],
      beta2: betas[1],
      eps: s.training.eps,
      optimizer: s.training.optimizer,
      momentum: s.training.momentum,
      dampening: s.training.dampening,
      nesterov: s.training.nesterov,
      gradClip: s.training.grad_clip,
      onNonFinite: s.training.on_nonfinite,
      seed: s.training.seed,
    },
    method,
    lora: method === 'lora' ? {
      r: s.lora?.r ?? LORA_DEFAULTS.r, alpha: s.lora?.alpha ?? LORA_DEFAULTS.alpha, dropout: s.lora?.dropout ?? LORA_DEFAULTS.dropout,
      targetModules: s.lora?.target_modules, modulesToSave: s.lora?.modules_to_save, useRslora: s.lora?.use_rslora ?? LORA_DEFAULTS.useRslora,
    } : undefined,
    checkpoint: { dir: checkpointDir, everyNSteps: s.checkpoint.every_n_steps, keep: s.checkpoint.keep },
    eval: {
      everyNSteps: s.eval.every_n_steps,
      metrics: s.eval.metrics,
      generationMetrics,
      maxBatches: s.eval.max_batches,
      generateMaxTokens: s.eval.generate_max_tokens,
      generateMaxExamples: s.eval.generate_max_examples,
      earlyStopping: s.eval.early_stopping && {
        metric: s.eval.early_stopping.metric, patience: s.eval.early_stopping.patience,
        mode: s.eval.early_stopping.mode, minDelta: s.eval.early_stopping.min_delta,
      },
    },
    cluster: {
      workers: s.cluster.workers,
      codec: s.cluster.codec,
      heartbeatIntervalMs: s.cluster.heartbeat_interval_ms,
      heartbeatTimeoutMs: s.cluster.heartbeat_timeout_ms,
      collectiveTimeoutMs: s.cluster.collective_timeout_ms,
      joinTimeoutMs: s.cluster.join_timeout_ms,
      hashEveryNSteps: s.cluster.hash_every_n_steps,
      nats: { ...s.cluster.nats, tls: tls(s.cluster.nats.tls) },
      ringTls: tls(s.cluster.ring_tls),
      ringConnections: s.cluster.ring_connections,
      secretFile: s.cluster.secret_file ? path(s.cluster.secret_file) : undefined,
      progressTimeoutMs: s.cluster.progress_timeout_ms,
      coordinatorRecoveryMs: s.cluster.coordinator_recovery_ms ?? (s.elastic.on_loss === 'fail' ? 0 : 60_000),
    },
    elastic: {
      minWorkers: s.elastic.min_workers ?? s.cluster.workers, maxWorkers: s.elastic.max_workers ?? s.cluster.workers,
      onLoss: s.elastic.on_loss, waitTimeoutMs: s.elastic.wait_timeout_ms,
    },
    outputDir,
  };
}

/** min_workers <= cluster.workers <= max_workers (the defaults are cluster.workers). */
function checkElastic(s: JobSpec, problem: (path: string, message: string) => void): void {
  const { min_workers: min, max_workers: max } = s.elastic;
  const n = s.cluster.workers;
  if (min !== undefined && min > n) problem('elastic.min_workers', `${min} is more than cluster.workers ${n}: the run could never start`);
  if (max !== undefined && max < n) problem('elastic.max_workers', `${max} is less than cluster.workers ${n}`);
}

/**
 * torch.optim.SGD's rule for Nesterov (momentum > 0, dampening 0), and sgd's fields set for another
 * optimizer, which would otherwise be silently ignored (momentum: 0.9 without optimizer: sgd).
 */
function checkOptimizer(t: JobSpec['training'], problem: (path: string, message: string) => void): void {
  if (t.optimizer !== 'sgd') {
    const set = (['momentum', 'dampening', 'nesterov'] as const).filter((k) => t[k] !== (k === 'nesterov' ? false : 0));
    for (const k of set) problem(`training.${k}`, `only training.optimizer sgd uses ${k}; this job's optimizer is ${t.optimizer}`);
    return;
  }
  if (t.nesterov && (t.momentum <= 0 || t.dampening !== 0)) {
    problem('training.nesterov', `Nesterov momentum needs training.momentum > 0 and training.dampening 0 (as torch.optim.SGD), got momentum ${t.momentum}, dampening ${t.dampening}`);
  }
}

/**
 * Why `dir` cannot be created as a directory, or undefined when it can (as far as we can tell now):
 * it is an existing file, or lies under one. Otherwise the run would fail with EEXIST or ENOTDIR
 * when it first writes, after the data and model were loaded. Permissions are left to that write.
 */
function notADirectory(dir: string): string | undefined {
  for (let p = dir; ; p = dirname(p)) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p, { throwIfNoEntry: false })?.isDirectory();
    } catch (err) {
      // ENOTDIR: a parent is a file, found as the walk goes up.
      if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') return undefined;
    }
    if (isDir === false) return p === dir ? `${dir} is a file, not a directory` : `${dir} is under ${p}, which is a file`;
    if (isDir || dirname(p) === p) return undefined;
  }
}

/**
 * Reads and compiles a job YAML file, with command-line overrides (overrides.ts) applied before
 * validation; YAML syntax errors name the line.
 */
export async function loadJobFile(jobFile: string, overrides: JobOverrides = {}): Promise<CompiledJob> {
  let text: string;
  try {
    text = await readFile(jobFile, 'utf8');
  } catch {
    throw new JobSpecError(`${jobFile}: cannot read the job file (create one with \`ringtune init DIR\`)`);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new JobSpecError(`${jobFile}${line ? `:${line}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const { spec, origins } = applyOverrides(doc.toJS(), overrides);
  return compileJob(spec, jobFile, { origins });
}
