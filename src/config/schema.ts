/**
 * The job spec (YAML) as a zod schema: every field, its default and its range in one place.
 * Unknown keys are rejected at every level so a typo never silently falls back to a default.
 * Names follow the YAML (snake_case); compile.ts turns the result into a CompiledJob.
 */
import { z } from 'zod';
import { BACKENDS } from '../model/backend-names.ts';
import { OPTIMIZER_KINDS } from '../optim/optimizer.ts';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
/** A positive integer or "auto" (the same words as --threads and RINGTUNE_THREADS). */
export const ThreadsSchema = z.custom<number | 'auto'>((v) => v === 'auto' || (Number.isInteger(v) && (v as number) > 0), {
  error: (issue) => `expected a positive integer or "auto", got ${JSON.stringify(issue.input)}`,
});

export const DataSchema = z
  .object({
    train: z.string().min(1),
    eval: z.string().min(1).optional(),
    format: z.enum(['text', 'prompt-completion', 'messages', 'label']),
    /** Record field names, when the dataset does not use the defaults. */
    fields: z
      .object({
        text: z.string().default('text'),
        prompt: z.string().default('prompt'),
        completion: z.string().default('completion'),
        messages: z.string().default('messages'),
        label: z.string().default('label'),
      })
      .strict()
      .prefault({}),
    max_seq_len: positiveInt.default(128),
    packing: z.boolean().default(false),
    /** The tokenizer's post-processor specials (a Llama <s>) around text / prompt-completion records, as HF's tokenizer(text). */
    add_special_tokens: z.boolean().default(true),
    /** Share of the training file held out for evaluation when no eval file is given. */
    eval_fraction: z.number().min(0).max(0.5).default(0.1),
    on_bad_record: z.enum(['fail', 'skip']).default('fail'),
    max_record_bytes: positiveInt.default(1_000_000),
  })
  .strict();

export const TrainingSchema = z
  .object({
    epochs: positiveInt.optional(),
    max_steps: positiveInt.optional(),
    global_batch: positiveInt.default(8),
    micro_batch: positiveInt.default(8),
    lr: z.number().positive().max(1).default(3e-4),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('cosine'),
    warmup_steps: nonNegInt.default(0),
    min_lr_ratio: z.number().min(0).max(1).default(0.1),
    weight_decay: z.number().min(0).default(0.01),
    /** Parameter groups excluded from weight decay. */
    no_decay: z.array(z.enum(['biases', 'norms', 'embeddings'])).default(['biases', 'norms']),
    /** Default [0.9, 0.999]; [0.9, 0.99] for lion (optim/optimizer.ts defaultBetas). */
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).optional(),
    eps: z.number().positive().default(1e-8),
    /** sgd, adam (L2 decay added to the gradient), adamw (decoupled decay), as torch.optim's; lion (Chen et al. 2023). */
    optimizer: z.enum(OPTIMIZER_KINDS).default('adamw'),
    /** sgd only: momentum (0 = plain SGD, no state), dampening, Nesterov (needs momentum > 0 and dampening 0). */
    momentum: z.number().min(0).lt(1).default(0),
    dampening: z.number().min(0).max(1).default(0),
    nesterov: z.boolean().default(false),
    grad_clip: z.number().min(0).default(1.0),
    /** A step whose loss or gradient norm is NaN/Inf: fail the run (naming step and rank), or skip its update (counted). */
    on_nonfinite: z.enum(['fail', 'skip_step']).default('fail'),
    seed: nonNegInt.default(0),
  })
  .strict()
  .refine((t) => t.epochs !== undefined || t.max_steps !== undefined, { message: 'set epochs or max_steps', path: ['epochs'] });

export const CheckpointSchema = z
  .object({
    dir: z.string().min(1).optional(),
    every_n_steps: nonNegInt.default(0),
    keep: positiveInt.default(2),
  })
  .strict();

export const EvalSchema = z
  .object({
    every_n_steps: nonNegInt.default(0),
    /** Extra metrics: bleu, rouge, exact_match (generated completions; causal LM with prompts). */
    metrics: z.array(z.string()).optional(),
    max_batches: positiveInt.optional(),
    generate_max_tokens: positiveInt.default(48),
    generate_max_examples: positiveInt.default(32),
    early_stopping: z
      .object({
        metric: z.string().default('loss'),
        patience: positiveInt.default(3),
        mode: z.enum(['min', 'max']).optional(),
        min_delta: z.number().min(0).default(0),
      })
      .strict()
      .optional(),
  })
  .strict();

/** LoRA (method: lora), PEFT's LoraConfig names; defaults as PEFT's, target_modules / modules_to_save per family (model/lora-config.ts). */
export const LoraSchema = z
  .object({
    r: positiveInt.default(8),
    alpha: z.number().positive().default(16),
    dropout: z.number().min(0).lt(1).default(0),
    target_modules: z.array(z.string().min(1)).optional(),
    modules_to_save: z.array(z.string().min(1)).optional(),
    use_rslora: z.boolean().default(false),
  })
  .strict();

const MethodName = z.enum(['full', 'lora']);

const TlsSchema = z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).strict();

export const ClusterSchema = z
  .object({
    workers: positiveInt.default(1),
    /**
     * Wire codec of the gradient all-reduce: fp32 exact; bf16 and fp16 half the bytes. fp16 carries a
     * per-message scale (no loss scaling needed) and feeds each rank's rounding error back into its
     * next gradient (src/collective/fp16.ts, error-feedback.ts).
     */
    codec: z.enum(['fp32', 'bf16', 'fp16']).default('fp32'),
    heartbeat_interval_ms: positiveInt.default(500),
    heartbeat_timeout_ms: positiveInt.default(5000),
    collective_timeout_ms: positiveInt.default(60_000),
    join_timeout_ms: positiveInt.default(300_000),
    /** Compare a hash of every replica's parameters this often (0 = never). */
    hash_every_n_steps: nonNegInt.default(10),
    nats: z
      .object({
        url: z.string().optional(),
        token: z.string().optional(),
        user: z.string().optional(),
        password: z.string().optional(),
        tls: TlsSchema.optional(),
      })
      .strict()
      .prefault({}),
    ring_tls: TlsSchema.optional(),
    /**
     * TCP connections per ring link (GrpcRingOptions.connections): K > 1 stripes each all-reduce over K
     * connections, each in its own thread on ring port + k, so K cores move bytes; bit-identical results.
     * Pays only with cores to spare (docs/collective.md, "Striping").
     */
    ring_connections: z
      .number()
      .int()
      .min(1)
      .max(16, { error: 'at most 16 (one thread per connection)' })
      .default(1),
    /** File holding the job's shared control-plane secret (else RINGTUNE_JOB_SECRET); never sent over NATS. */
    secret_file: z.string().optional(),
    /** Fail a run whose step has not advanced for this long (0 = never). */
    progress_timeout_ms: nonNegInt.default(900_000),
    /**
     * How long workers whose coordinator fell silent (2 x heartbeat_timeout_ms) keep training and wait
     * for a restarted one (`ringtune coordinator --resume-if-present`) before they abort; 0 = abort at
     * once. Default 60000 when elastic.on_loss is shrink or wait, 0 under fail (docs/reliability.md).
     */
    coordinator_recovery_ms: nonNegInt.optional(),
  })
  .strict();

/**
 * What the job does when a worker is lost mid-run (docs/reliability.md): `fail` stops the run (resume
 * with --resume); `shrink` re-forms the ring from the survivors; `wait` waits for a replacement first.
 * min/max_workers default to cluster.workers; a Join while running below max_workers scales up.
 */
export const ElasticSchema = z
  .object({
    min_workers: positiveInt.optional(),
    max_workers: positiveInt.optional(),
    on_loss: z.enum(['shrink', 'wait', 'fail']).default('fail'),
    wait_timeout_ms: positiveInt.default(60_000),
  })
  .strict();

export const JobSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only').default('job'),
    model: z.string().min(1),
    task: z.enum(['causal-lm', 'classification']).optional(),
    backend: z.enum(['auto', ...BACKENDS]).default('auto'),
    /**
     * Cores one process (ringtune train, or each worker) gives the native engine. auto: all cores for
     * `ringtune train` and a lone worker, cores / workers for `ringtune local`. --threads and
     * RINGTUNE_THREADS override it.
     */
    threads: ThreadsSchema.default('auto'),
    data: DataSchema,
    training: TrainingSchema,
    /** full | lora; the older `{type: full}` form is still accepted. */
    method: z.union([MethodName, z.object({ type: MethodName.default('full') }).strict()]).default('full'),
    lora: LoraSchema.optional(),
    checkpoint: CheckpointSchema.prefault({}),
    eval: EvalSchema.prefault({}),
    cluster: ClusterSchema.prefault({}),
    elastic: ElasticSchema.prefault({}),
    output: z.string().min(1).default('out'),
  })
  .strict();

export type JobSpec = z.infer<typeof JobSchema>;
