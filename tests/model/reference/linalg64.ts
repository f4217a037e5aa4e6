// Shared float64 building blocks for the independent reference forward passes.
//
// Everything here is plain TypeScript over Float64Array, row-major, with no tfjs and no imports
// from src/. It mirrors the PyTorch modules used by Hugging Face `transformers`
// (nn.Linear, transformers' Conv1D, nn.LayerNorm, LlamaRMSNorm, ACT2FN, eager attention).

/** One tensor of a Hugging Face state dict. */
export interface Tensor64Source {
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array;
}

/** State dict keyed by canonical HF names (with model prefix: `transformer.`, `model.`, `bert.`). */
export type Weights64 = ReadonlyMap<string, Tensor64Source>;

/** A Hugging Face config.json object (snake_case keys). */
export type HfConfig64 = object;

// ---------------------------------------------------------------------------------------------
// Config and weight access
// ---------------------------------------------------------------------------------------------

function cfgValue(config: HfConfig64, key: string): unknown {
  const v = (config as Record<string, unknown>)[key];
  return v === null ? undefined : v;
}

/** Numeric config field; `fallback` is the HF default (undefined means the field is required). */
export function cfgNumber(config: HfConfig64, key: string, fallback?: number): number {
  const v = cfgValue(config, key);
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`reference64: config.${key} is required`);
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new Error(`reference64: config.${key} must be a finite number, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function cfgBool(config: HfConfig64, key: string, fallback: boolean): boolean {
  const v = cfgValue(config, key);
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new Error(`reference64: config.${key} must be a boolean`);
  return v;
}

export function cfgString(config: HfConfig64, key: string, fallback: string): string {
  const v = cfgValue(config, key);
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new Error(`reference64: config.${key} must be a string`);
  return v;
}

export function cfgObject(config: HfConfig64, key: string): Record<string, unknown> | undefined {
  const v = cfgValue(config, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`reference64: config.${key} must be an object`);
  return v as Record<string, unknown>;
}

/**
 * Number of labels for a *ForSequenceClassification head. The classifier weight's first dim is
 * authoritative; config.num_labels / config.id2label (HF's PretrainedConfig derives num_labels
 * from id2label) must agree with it when present.
 */
export function numLabelsFor(config: HfConfig64, weightRows: number): number {
  const explicit = cfgValue(config, 'num_labels');
  const id2label = cfgObject(config, 'id2label');
  const fromConfig = typeof explicit === 'number' ? explicit : id2label ? Object.keys(id2label).length : undefined;
  if (fromConfig !== undefined && fromConfig !== weightRows) {
    throw new Error(`reference64: config says ${fromConfig} labels but classifier weight has ${weightRows} rows`);
  }
  return weightRows;
}

export function hasWeight(weights: Weights64, name: string): boolean {
  return weights.has(name);
}

/** Fetch a weight as float64, checking its shape exactly. */
export function weight64(weights: Weights64, name: string, shape: readonly number[]): Float64Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference64: missing weight ${name}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`reference64: weight ${name} has shape [${t.shape}], expected [${shape}]`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw new Error(`reference64: weight ${name} has ${t.data.length} values, expected ${n}`);
  return Float64Array.from(t.data);
}

/** Optional weight (e.g. biases gated by a config flag): undefined when absent from the map. */
export function optionalWeight64(weights: Weights64, name: string, shape: readonly number[]): Float64Array | undefined {
  return weights.has(name) ? weight64(weights, name, shape) : undefined;
}

export function checkIds(ids: readonly (readonly number[])[], vocabSize: number): { B: number; T: number } {
  const B = ids.length;
  if (B === 0) throw new Error('reference64: empty batch');
  const T = ids[0]!.length;
  if (T === 0) throw new Error('reference64: empty sequence');
  for (const row of ids) {
    if (row.length !== T) throw new Error('reference64: ragged ids; pad rows to equal length');
    for (const id of row) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`reference64: token id ${id} out of range`);
    }
  }
  return { B, T };
}

export function checkLengths(lengths: readonly number[], B: number, T: number): void {
  if (lengths.length !== B) throw new Error(`reference64: ${lengths.length} lengths for batch ${B}`);
  for (const l of lengths) {
    if (!Number.isInteger(l) || l < 1 || l > T) throw new Error(`reference64: length ${l} outside [1, ${T}]`);
  }
}

// ---------------------------------------------------------------------------------------------
// Linear layers
// ---------------------------------------------------------------------------------------------

/**
 * torch nn.Linear: x (rows, inDim) , W (outDim, inDim) , b (outDim) -> y (rows, outDim)
 * y[r, o] = sum_i x[r, i] * W[o, i] + b[o]
 */
export function linear(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float64Array,
  outDim: number,
  b?: Float64Array,
): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i]! * w[wo + i]!;
      y[r * outDim + o] = s;
    }
  }
  return y;
}

/**
 * transformers.pytorch_utils.Conv1D (GPT-2): weight stored transposed relative to nn.Linear.
 * x (rows, inDim) , W (inDim, outDim) , b (outDim) -> y (rows, outDim)
 * y[r, o] = sum_i x[r, i] * W[i, o] + b[o]      (torch.addmm(bias, x, weight))
 */
export function conv1d(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float64Array,
  outDim: number,
  b: Float64Array,
): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    const yo = r * outDim;
    for (let o = 0; o < outDim; o++) y[yo + o] = b[o]!;
    for (let i = 0; i < inDim; i++) {
      const xi = x[r * inDim + i]!;
      if (xi === 0) continue;
      const wi = i * outDim;
      for (let o = 0; o < outDim; o++) y[yo + o] += xi * w[wi + o]!;
    }
  }
  return y;
}

/** Elementwise a += b (residual connection). */
export function addInPlace(a: Float64Array, b: Float64Array): void {
  if (a.length !== b.length) throw new Error('reference64: residual shape mismatch');
  for (let i = 0; i < a.length; i++) a[i] += b[i]!;
}

// ---------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------

/**
 * torch nn.LayerNorm over the last dim (biased variance):
 * y = (x - mean) / sqrt(var + eps) * w + b, per row of x (rows, d).
 */
export function layerNorm(x: Float64Array, rows: number, d: number, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i]!;
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) {
      const c = x[o + i]! - mean;
      variance += c * c;
    }
    variance /= d;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < d; i++) y[o + i] = (x[o + i]! - mean) * inv * w[i]! + b[i]!;
  }
  return y;
}

/**
 * LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps), per row of x (rows, d). No mean subtraction,
 * no bias.
 */
export function rmsNorm(x: Float64Array, rows: number, d: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[o + i]! * x[o + i]!;
    ms /= d;
    const inv = 1 / Math.sqrt(ms + eps);
    for (let i = 0; i < d; i++) y[o + i] = w[i]! * (x[o + i]! * inv);
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Activations (transformers.activations.ACT2FN)
// ---------------------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * Error function in float64, absolute error ~1e-15 everywhere.
 *
 * For |x| < 6 uses the everywhere-convergent series with positive terms (no cancellation):
 *   erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_{n>=0} 2^n x^(2n+1) / (1*3*5*...*(2n+1))
 * i.e. t_0 = x, t_{n+1} = t_n * 2x^2 / (2n+3). All terms share the sign of x, so the relative
 * rounding error of the sum is O(n * eps) with n <= ~200 terms.
 * For |x| >= 6, erfc(|x|) <= 2.2e-17 < eps/2, so erf(x) rounds to sign(x).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  if (ax === 0) return x; // keeps -0
  const x2 = ax * ax;
  let term = ax;
  let sum = ax;
  for (let n = 0; n < 1000; n++) {
    term *= (2 * x2) / (2 * n + 3);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const r = TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  return x < 0 ? -r : r;
}

/** GELUActivation ("gelu"): exact x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))). */
export function geluErf(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** NewGELUActivation ("gelu_new"; "gelu_pytorch_tanh" is the same formula). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** SiLU / swish: x * sigmoid(x). */
export function silu(x: number): number {
  return x * sigmoid(x);
}

/** Look up an ACT2FN name. Unknown names throw rather than silently approximating. */
export function activation(name: string): (x: number) => number {
  switch (name) {
    case 'gelu':
    case 'gelu_python':
      return geluErf;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast': // 0.5x(1+tanh(0.7978845608 x (1 + 0.044715 x^2))): same function as gelu_new
      return geluTanh;
    case 'quick_gelu':
      return (x) => x * sigmoid(1.702 * x);
    case 'silu':
    case 'swish':
      return silu;
    case 'relu':
      return (x) => (x > 0 ? x : 0);
    case 'tanh':
      return Math.tanh;
    case 'sigmoid':
      return sigmoid;
    case 'linear':
      return (x) => x;
    default:
      throw new Error(`reference64: unsupported activation ${JSON.stringify(name)}`);
  }
}

export function mapInPlace(x: Float64Array, f: (v: number) => number): void {
  for (let i = 0; i < x.length; i++) x[i] = f(x[i]!);
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

export interface AttentionOptions {
  /** Number of query heads. */
  nHeads: number;
  /** Number of key/value heads (GQA); query head h reads kv head floor(h / (nHeads / nKvHeads)), as HF repeat_kv. */
  nKvHeads: number;
  headDim: number;
  /** Multiplier applied to q.k (HF: 1/sqrt(head_dim), possibly further divided). */
  scale: number;
  /** Causal: query t attends to keys s <= t. */
  causal: boolean;
  /**
   * Optional key padding mask (T): keys with keyMask[s] == 0 are excluded. HF adds finfo.min to
   * such scores; if every key of a query is excluded the scores are all equal to finfo.min and
   * softmax is uniform over all keys, which we reproduce.
   */
  keyMask?: readonly number[];
}

/**
 * Eager scaled-dot-product attention for one sequence.
 * q (T, nHeads*headDim), k and v (T, nKvHeads*headDim), heads laid out in contiguous blocks of
 * headDim (HF `.view(B, T, H, D)`). Returns (T, nHeads*headDim), i.e. the heads merged back in
 * the same layout (HF `transpose(1, 2).reshape(B, T, H*D)`).
 */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, o: AttentionOptions): Float64Array {
  const { nHeads, nKvHeads, headDim: D } = o;
  if (nHeads % nKvHeads !== 0) throw new Error('reference64: num_attention_heads must be a multiple of num_key_value_heads');
  const groups = nHeads / nKvHeads;
  const qStride = nHeads * D;
  const kvStride = nKvHeads * D;
  const out = new Float64Array(T * qStride);
  const scores = new Float64Array(T);
  const allowed = new Uint8Array(T);
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / groups);
    for (let t = 0; t < T; t++) {
      // Which keys this query may see.
      let anyAllowed = false;
      for (let s = 0; s < T; s++) {
        const ok = (!o.causal || s <= t) && (!o.keyMask || o.keyMask[s] !== 0);
        allowed[s] = ok ? 1 : 0;
        if (ok) anyAllowed = true;
      }
      if (!anyAllowed) allowed.fill(1); // HF finfo.min everywhere -> uniform softmax
      // scores[s] = scale * q[t,h] . k[s,kvh]
      let max = -Infinity;
      for (let s = 0; s < T; s++) {
        if (!allowed[s]) continue;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[t * qStride + h * D + d]! * k[s * kvStride + kvh * D + d]!;
        scores[s] = dot * o.scale;
        if (scores[s]! > max) max = scores[s]!;
      }
      // softmax over allowed keys (masked keys get exactly zero weight)
      let denom = 0;
      for (let s = 0; s < T; s++) {
        if (!allowed[s]) continue;
        scores[s] = Math.exp(scores[s]! - max);
        denom += scores[s]!;
      }
      // out[t,h] = sum_s p[s] * v[s,kvh]
      for (let s = 0; s < T; s++) {
        if (!allowed[s]) continue;
        const p = scores[s]! / denom;
        for (let d = 0; d < D; d++) out[t * qStride + h * D + d] += p * v[s * kvStride + kvh * D + d]!;
      }
    }
  }
  return out;
}

/** Copy row `r` of an (rows, d) matrix into a new (1, d) array. */
export function row(x: Float64Array, r: number, d: number): Float64Array {
  return x.slice(r * d, (r + 1) * d);
}
