/** The commented job.yaml that `ringtune init` writes: every default visible, nothing required hidden. */
export interface InitOptions {
  model: string;
  train: string;
  eval?: string;
  format: 'text' | 'prompt-completion' | 'messages' | 'label';
}

export function jobTemplate(o: InitOptions): string {
  return `# ringtune job spec. Paths are relative to this file. Every key below shows its default;
# delete what you do not change. Validate with: ringtune train job.yaml --dry-run
name: job
model: ${o.model}                  # Hugging Face model dir: config.json, model.safetensors, tokenizer.json
# task: causal-lm                 # causal-lm | classification (default: classification for format label)
backend: auto                     # auto | tensorflow-gpu | tensorflow | native | wasm | cpu
threads: auto                     # native engine cores per process: N | auto (all cores; ringtune local: cores / workers)

data:
  train: ${o.train}               # JSON Lines (.jsonl) or CSV (.csv, labelled data)
${o.eval ? `  eval: ${o.eval}` : '  # eval: eval.jsonl              # default: hold out eval_fraction of train'}
  format: ${o.format}             # text | prompt-completion | messages | label
  # fields: {text: text, prompt: prompt, completion: completion, messages: messages, label: label}
  max_seq_len: 128                # tokens per example (longer ones are truncated)
  packing: false                  # causal LM: concatenate short examples into full rows
  add_special_tokens: true        # the tokenizer's BOS / [CLS] [SEP] as Hugging Face's tokenizer(text) adds them
  eval_fraction: 0.1
  on_bad_record: fail             # fail | skip (skipped records are counted in the report)
  max_record_bytes: 1000000

training:
  epochs: 3                       # or max_steps: N
  global_batch: 8                 # examples per optimizer step, summed over all workers
  micro_batch: 8                  # examples per forward/backward (gradient accumulation = global / micro)
  lr: 0.0003
  schedule: cosine                # constant | linear | cosine, each with warmup
  warmup_steps: 0
  min_lr_ratio: 0.1
  optimizer: adamw                # sgd | adam | adamw, as torch.optim's | lion
  weight_decay: 0.01              # adamw, lion: decoupled; sgd, adam: L2 added to the gradient
  no_decay: [biases, norms]       # groups without weight decay: biases | norms | embeddings
  betas: [0.9, 0.999]             # adam, adamw (lion: default [0.9, 0.99])
  eps: 1.0e-8                     # adam and adamw
  momentum: 0                     # sgd only: 0 keeps no momentum buffer
  dampening: 0                    # sgd only
  nesterov: false                 # sgd only; needs momentum > 0 and dampening 0
  grad_clip: 1.0                  # global L2 norm; 0 disables
  seed: 0
  on_nonfinite: fail              # fail | skip_step: a NaN/Inf loss or gradient stops the run, or skips that update

method: full                      # full | lora (frozen base + adapters in PEFT's format; final/ is the adapter)
# lora: {r: 8, alpha: 16, dropout: 0, target_modules: [q_proj, v_proj], use_rslora: false}   # with method: lora; defaults per family
#   # modules_to_save: [score]      # trained whole; default: the classification head for classification

checkpoint:
  every_n_steps: 0                # 0 = only the final model
  keep: 2
  # dir: out/checkpoints

eval:
  every_n_steps: 0                # 0 = evaluate before and after training only
  # max_batches: 50
  # early_stopping: {metric: loss, patience: 3, min_delta: 0}

cluster:                          # distributed runs (ringtune local / coordinator / worker)
  workers: 1
  codec: fp32                     # gradient wire codec: fp32 (exact) | bf16 | fp16 (half the bytes; fp16 with error feedback)
  heartbeat_interval_ms: 500
  heartbeat_timeout_ms: 5000      # a worker silent this long stops the run, naming its rank
  collective_timeout_ms: 60000
  join_timeout_ms: 300000
  hash_every_n_steps: 10          # compare a hash of every replica's parameters
  progress_timeout_ms: 900000     # fail a run whose step has not advanced for this long (0 = never)
  # secret_file: job.secret       # the control plane's shared secret (else RINGTUNE_JOB_SECRET; local makes one)
  # nats: {url: nats://127.0.0.1:4222, token: ..., user: ..., password: ..., tls: {ca: ..., cert: ..., key: ...}}
  # ring_tls: {ca: ca.pem, cert: worker.pem, key: worker.key}     # mutual TLS between ring peers
  # ring_connections: 1           # TCP connections per ring link, one thread each, on ring port..port+N-1 (docs/collective.md)

output: out
`;
}
