/**
 * Will the job fit in this machine's memory? An estimate from the model's config.json and the job,
 * checked before any weights, data or outputs are touched, so a model too large for the machine is an
 * error naming the fields that make it large instead of an out-of-memory abort minutes later.
 *
 * Bytes, all float32. P = parameters (parameterCounts: the families' layouts, counted independently
 * of model/*.ts), B = training.micro_batch, T = data.max_seq_len, L = layers, d = hidden size,
 * f = MLP width, H = attention heads, V = vocabulary:
 *   weights                     4 P                    every purpose
 *   gradients                   4 P                    training (FlatParams.grads)
 *   optimizer state             4 P per state buffer   training: adam(w) m and v 8 P, sgd with momentum
 *                                                      4 P, lion 4 P, plain sgd 0 (optim/optimizer.ts
 *                                                      stateBufferNames)
 *   rotary tables (Llama)       8 T_max hd             cos and sin over max_position_embeddings
 *   activations                 4 B T (12 d + 4 f + 2 H T) per layer
 *                               training keeps every layer's for the backward pass; eval one at a time
 *   logits                      4 B T V x 3 (training: logits, log-softmax, its gradient), x 2 (eval)
 * The activation count is an order of magnitude, not an inventory: per token and layer, ~12 d-wide
 * tensors (norm inputs and outputs, q, k, v, attention output, projections, residuals), ~4 f-wide
 * (MLP input, activation, gate) and the attention scores and their softmax (T wide per head). Compare
 * Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), who count
 * s b h (34 + 5 a s / h) bytes per layer in 16-bit with dropout.
 * Left out: the V8 heap, file buffers while weights load, kernels' scratch space. They only add, so the
 * check errs towards letting a run start: it refuses what cannot fit, not everything that might not.
 * Imports no tfjs (config/ never does): the check runs before a backend exists.
 */
import { totalmem } from 'node:os';
import { InputError } from '../errors.ts';
import { hfKey, type ModelConfig, type SizeField, type Task } from '../model/config.ts';
import { stateBufferNames, type OptimizerSettings } from '../optim/optimizer.ts';

export interface ParameterCounts {
  /** Token embeddings, BERT's token types and embedding norm, and an untied LM head (V x d). */
  embeddings: number;
  /** Learned position embeddings (GPT-2, BERT); 0 for Llama's rotary positions. */
  positions: number;
  perLayer: number;
  layers: number;
  /** Final norm, classification head and BERT's pooler. */
  other: number;
  total: number;
}

/** Parameters of a config and task, by part; equals the sum over paramSpecs (tests/config/memory.test.ts). */
export function parameterCounts(c: ModelConfig, task: Task): ParameterCounts {
  const { dModel: d, dFF: f, vocabSize: V, nLayers: L } = c;
  const untiedHead = task === 'causal-lm' && !c.tieEmbeddings ? V * d : 0;
  const classifier = task === 'classification' ? d * c.numLabels : 0;
  let embeddings: number, positions: number, perLayer: number, other: number;
  if (c.family === 'llama') {
    const q = c.nHeads * c.headDim;
    const kv = c.nKvHeads * c.headDim;
    // RMSNorm x2 (d each), q/k/v/o projections, SwiGLU gate/up/down; biases when configured.
    perLayer = 2 * d + 2 * d * q + 2 * d * kv + 3 * d * f + (c.attentionBias ? q + 2 * kv + d : 0) + (c.mlpBias ? 2 * f + d : 0);
    embeddings = V * d + untiedHead;
    positions = 0;
    other = d + classifier;
  } else {
    // LayerNorm x2 (gain and bias), q/k/v/o with biases, MLP in/out with biases.
    perLayer = 4 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d);
    positions = c.maxPositions * d;
    if (c.family === 'gpt2') {
      embeddings = V * d + untiedHead;
      other = 2 * d + classifier;
    } else {
      embeddings = V * d + c.typeVocabSize * d + 2 * d;
      other = d * d + d + classifier + c.numLabels; // pooler, score weight and bias
    }
  }
  const layers = L * perLayer;
  return { embeddings, positions, perLayer, layers, other, total: embeddings + positions + layers + other };
}

export type MemoryPurpose = 'train' | 'eval';

export interface MemoryPart {
  name: string;
  bytes: number;
  /** How the bytes come about, naming the config.json keys and job fields with their values. */
  because: string;
}

export interface MemoryEstimate {
  purpose: MemoryPurpose;
  /** Largest first. */
  parts: MemoryPart[];
  totalBytes: number;
}

/** What each parameter costs besides its weight when training: its gradient and the optimizer's state. */
function trainingState(o: Pick<OptimizerSettings, 'optimizer' | 'momentum'>): { perParam: number; state: string } {
  const buffers = stateBufferNames(o).length;
  const perParam = 4 * (2 + buffers);
  const what = { sgd: 'SGD momentum buffer', adam: 'Adam m and v', adamw: 'AdamW m and v', lion: 'Lion m' }[o.optimizer];
  return { perParam, state: `weights, gradients${buffers ? `, ${what}` : ''}: ${perParam} bytes each` };
}

/**
 * A LoRA run's trainable part (train/setup.ts counts it from the model's LoRA plan): the base is
 * frozen (4 bytes per weight: no gradient, no optimizer state); the adapter (and modules_to_save)
 * pays weights + gradients + state; each adapted weight is materialised as W + s A B in the forward,
 * kept for the backward, and gets a gradient of its size there (2 x 4 bytes per targeted weight).
 */
export interface LoraMemory {
  trainableParams: number;
  targetedWeights: number;
}

/**
 * The estimate in the header's formula, by part. `optimizer` (training's) defaults to AdamW; with
 * `lora` only the adapter carries gradients and optimizer state.
 */
export function estimateMemory(
  c: ModelConfig, task: Task,
  o: { purpose: MemoryPurpose; microBatch: number; seqLen: number; optimizer?: Pick<OptimizerSettings, 'optimizer' | 'momentum'>; lora?: LoraMemory },
): MemoryEstimate {
  const key = (f: SizeField) => `${hfKey(c.family, f)} ${c[f]}`;
  const train = o.purpose === 'train';
  const trainState = trainingState(o.optimizer ?? { optimizer: 'adamw', momentum: 0 });
  const frozen = !train || o.lora !== undefined;
  const { perParam, state } = frozen ? { perParam: 4, state: train ? 'frozen base weights: 4 bytes each' : 'weights: 4 bytes each' } : trainState;
  const p = parameterCounts(c, task);
  const tokens = `training.micro_batch ${o.microBatch} x data.max_seq_len ${o.seqLen}`;
  const perToken = 12 * c.dModel + 4 * c.dFF + 2 * c.nHeads * o.seqLen;
  const keptLayers = train ? c.nLayers : 1;
  const parts: MemoryPart[] = [
    {
      name: 'transformer layers', bytes: p.layers * perParam,
      because: `${key('nLayers')} x ${count(p.perLayer)} parameters each (${key('dModel')}, ${key('dFF')}; ${state})`,
    },
    {
      name: 'embeddings', bytes: p.embeddings * perParam,
      because: `${key('vocabSize')} x ${key('dModel')}${task === 'causal-lm' && !c.tieEmbeddings ? ' x 2 (untied lm_head)' : ''} (${state})`,
    },
    { name: 'position embeddings', bytes: p.positions * perParam, because: `${key('maxPositions')} x ${key('dModel')} (${state})` },
    { name: 'heads and final norm', bytes: p.other * perParam, because: `${count(p.other)} parameters (${state})` },
    {
      name: 'rotary tables', bytes: c.family === 'llama' ? 8 * c.maxPositions * c.headDim : 0,
      because: `cos and sin: ${key('maxPositions')} x ${key('headDim')} x 4 bytes each`,
    },
    ...(train && o.lora ? [
      { name: 'LoRA adapter', bytes: o.lora.trainableParams * trainState.perParam, because: `${count(o.lora.trainableParams)} trainable parameters (${trainState.state})` },
      {
        name: 'LoRA merged weights', bytes: 8 * o.lora.targetedWeights,
        because: `${count(o.lora.targetedWeights)} weights of the adapted layers as W + s A B, kept for the backward pass, and their gradient: 8 bytes each`,
      },
    ] : []),
    {
      name: 'activations', bytes: 4 * o.microBatch * o.seqLen * keptLayers * perToken,
      because: `${tokens} tokens x ${train ? `${key('nLayers')} layers kept for the backward pass` : 'one layer at a time'} x ` +
        `~${count(perToken)} floats per token and layer (12 x ${key('dModel')} + 4 x ${key('dFF')} + 2 x ${key('nHeads')} x data.max_seq_len)`,
    },
    {
      name: 'logits', bytes: task === 'causal-lm' ? 4 * (train ? 3 : 2) * o.microBatch * o.seqLen * c.vocabSize : 4 * o.microBatch * c.numLabels,
      because: task === 'causal-lm' ? `${tokens} x ${key('vocabSize')} x ${train ? 3 : 2} copies` : `training.micro_batch ${o.microBatch} x ${key('numLabels')}`,
    },
  ];
  parts.sort((a, b) => b.bytes - a.bytes);
  return { purpose: o.purpose, parts: parts.filter((x) => x.bytes > 0), totalBytes: parts.reduce((n, x) => n + x.bytes, 0) };
}

export interface AvailableMemory {
  bytes: number;
  /** Where the number comes from, for the error message. */
  source: string;
}

/**
 * The memory a process of this machine may use: RINGTUNE_MEMORY_LIMIT when set (bytes, or a number
 * with K, M, G or T, powers of 1024: a container's limit the OS does not report, or a test), else the
 * physical memory. Read by the process that runs the model (each worker on its own machine), not at
 * job compile time on the coordinator's.
 */
export function availableMemory(env: NodeJS.ProcessEnv = process.env): AvailableMemory {
  const raw = env.RINGTUNE_MEMORY_LIMIT;
  if (raw !== undefined && raw.trim() !== '') return { bytes: parseByteSize(raw, 'RINGTUNE_MEMORY_LIMIT'), source: `RINGTUNE_MEMORY_LIMIT=${raw.trim()}` };
  return { bytes: totalmem(), source: 'physical memory; RINGTUNE_MEMORY_LIMIT overrides it' };
}

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** "8G", "512MiB", "1073741824" -> bytes. Errors name `where`. */
export function parseByteSize(text: string, where: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]) : NaN;
  if (!(bytes > 0)) throw new InputError(`${where}: expected a size in bytes such as 17179869184 or 16G, got "${text}"`);
  return bytes;
}

/**
 * Throws an InputError when the estimate exceeds the available memory: the total, then the parts
 * that make up most of it with the config.json keys and job fields behind them, then what to do.
 * `where` (the job file) starts the message; `configFile` is where the keys come from.
 */
export function checkMemory(estimate: MemoryEstimate, available: AvailableMemory, where: string, configFile: string): void {
  if (estimate.totalBytes <= available.bytes) return;
  const what = estimate.purpose === 'train' ? 'training' : 'running';
  // The parts that matter: the largest ones making up 90% of the total (at least one).
  const shown: MemoryPart[] = [];
  let covered = 0;
  for (const part of estimate.parts) {
    if (shown.length && covered >= 0.9 * estimate.totalBytes) break;
    shown.push(part);
    covered += part.bytes;
  }
  throw new InputError(
    `${where}: ${what} this model needs ~${formatBytes(estimate.totalBytes)} of memory, ${formatBytes(available.bytes)} available (${available.source}):\n` +
    shown.map((part) => `  ${part.name} ~${formatBytes(part.bytes)}: ${part.because}`).join('\n') +
    `\nKeys are from ${configFile}. Use a smaller model` +
    `${shown.some((x) => x.name === 'activations' || x.name === 'logits') ? ', or lower training.micro_batch or data.max_seq_len' : ''}.`,
  );
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toPrecision(3)} ${units[i]}`;
}

/** 12582912 -> "12.6M": parameter counts in messages. */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)}B`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)}k`;
  return String(n);
}
