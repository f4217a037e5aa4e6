/**
 * LoRA adapters on a frozen base (Hu et al. 2021; HF peft src/peft/tuners/lora/layer.py):
 *   W_eff (in, out) = W + scale * A (in, r) @ B (r, out)      scale = alpha / r  (rsLoRA: alpha / sqrt(r))
 * ringtune stores x @ W, so A and B are the transposes of PEFT's lora_A.weight [r, in] and
 * lora_B.weight [out, r]. Init as PEFT's init_lora_weights=True: A ~ kaiming_uniform(a=sqrt(5)) on
 * [r, in], i.e. U(-1/sqrt(in), 1/sqrt(in)), B = 0, so a fresh adapter leaves the model unchanged.
 *
 * The forward builds W_eff for every target and hands the family body an ordinary parameter map:
 * no layer code or native kernel changes, and tf.variableGrads over A and B gives exact gradients on
 * every backend. Cost: one extra (in x r x out) product per target per forward, and in backward the
 * gradient of the (in, out) effective weight (dA = s dW_eff B^T, dB = s A^T dW_eff) instead of none.
 * Merging (mergeAdapter in model.ts) runs the same arithmetic once, so a merged model's forward is
 * bit-identical to the adapter's.
 *
 * lora_dropout p > 0 acts on the layer's input, which no merged weight can express; PEFT computes
 *   y (N, out) = x @ W + scale * (drop(x) (N, in) @ A) @ B
 * So a TRAINING forward with p > 0 (withDropout) hands the body the base W unchanged and adds the
 * second term inside linear() (layers/linear.ts withLinearHook), found by the weight tensor object.
 * Inverted dropout as torch's: keep with 1 - p, kept values times 1 / (1 - p). One mask per target and
 * input: c_attn's q, k and v are three linear calls on one x, and share one drop(x) @ A as PEFT's
 * single c_attn module does. Each example's rows of the mask come from util/rng.ts seeded by
 * (training.seed, step, the example's global index, target index): a resumed run draws the masks the
 * uninterrupted one drew, and (unlike a seed per rank and micro-batch) they do not depend on how a
 * step's examples are split into micro-batches or over ranks, so the step stays "the mean over the
 * global batch however it was split" (train-step.ts). Right padding puts an example's real positions
 * first in its rows, so its padding length does not change their masks either. Evaluation, generation
 * and merging never drop: they take the merged path above.
 *
 * Targets come from the family's hf-keys table: a rule whose HF name ends in `.weight`, whose internal
 * weights are 2-D and whose module matches a target name. GPT-2's fused c_attn (split-cols) gets ONE
 * pair whose B columns split into wq | wk | wv, exactly as PEFT adapts the fused Conv1D.
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError, RingtuneError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import type { ModelConfig, Task } from './config.ts';
import type { Layout } from './hf-keys/types.ts';
import { linear, withLinearHook } from './layers/linear.ts';
import { moduleMatches, type ResolvedLora } from './lora-config.ts';
import type { ParamSpec, Params } from './params.ts';
import type { HostTensor } from './safetensors.ts';
import { concreteRules, transpose2d } from './weights.ts';

/** One HF tensor of the model: canonical (prefixed) name, its module path, and the internal names it maps to. */
export interface HFTensorRule {
  hf: string;
  /** The name without the body prefix (base *Model checkpoints and PEFT adapters trained on them). */
  body: string;
  module: string;
  /** `module` without the body prefix. */
  bodyModule: string;
  internal: string[];
  layout: Layout;
  /** Layer index, for ordering (Infinity outside the layers). */
  layer: number;
}

/** Every HF tensor of this model, layer by layer (module order as in a torch state dict). */
export function hfTensorRules(cfg: ModelConfig, specs: ReadonlyMap<string, ParamSpec>): HFTensorRule[] {
  const out = concreteRules(cfg, specs).map(({ hf, bodyName: body, internal, layout, layer }): HFTensorRule => ({
    hf, body, module: hf.slice(0, hf.lastIndexOf('.')), bodyModule: body.slice(0, body.lastIndexOf('.')), internal, layout, layer: layer < 0 ? Infinity : layer,
  }));
  // Stable sort: within a layer the table's order, which is the HF module order.
  return out.sort((a, b) => (a.layer === b.layer ? 0 : a.layer < b.layer ? -1 : 1));
}

export interface LoraTarget {
  /** Canonical HF module path, e.g. model.layers.0.self_attn.q_proj. */
  module: string;
  /** Without the body prefix (layers.0.self_attn.q_proj): adapters trained on a base *Model. */
  bodyModule: string;
  /** Internal weights W (in, out); three for GPT-2's c_attn, whose B columns split among them. */
  weights: string[];
  inFeatures: number;
  /** Summed over `weights`. */
  outFeatures: number;
  /** Internal names of this target's A (in, r) and B (r, out). */
  a: string;
  b: string;
}

/** The adapted modules and the modules trained whole, for this model and config. */
export function loraPlan(cfg: ModelConfig, task: Task, specList: readonly ParamSpec[], lora: ResolvedLora, where: string): { targets: LoraTarget[]; saved: HFTensorRule[] } {
  const specs = new Map(specList.map((s) => [s.name, s]));
  const rules = hfTensorRules(cfg, specs);
  const targets: LoraTarget[] = [];
  for (const r of rules) {
    if (!r.hf.endsWith('.weight') || !lora.targetModules.some((t) => moduleMatches(r.module, t))) continue;
    const shapes = r.internal.map((n) => specs.get(n)!.shape);
    if (shapes.some((s) => s.length !== 2)) continue;
    targets.push({
      module: r.module, bodyModule: r.bodyModule, weights: r.internal, inFeatures: shapes[0][0], outFeatures: shapes.reduce((n, s) => n + s[1], 0),
      a: `${r.module}.lora_A`, b: `${r.module}.lora_B`,
    });
  }
  const saved = rules.filter((r) => lora.modulesToSave.some((m) => moduleMatches(r.module, m)));
  const problems: string[] = [];
  if (!targets.length) problems.push(`lora.target_modules [${lora.targetModules.join(', ')}] matches no linear layer of this ${cfg.family} model`);
  const missing = lora.modulesToSave.filter((m) => !saved.some((r) => moduleMatches(r.module, m)));
  if (missing.length) {
    const names = [...new Set(rules.map((r) => r.module.slice(r.module.lastIndexOf('.') + 1)))];
    problems.push(`lora.modules_to_save: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not a module of this ${cfg.family} ${task} model; its modules: ${names.join(', ')}`);
  }
  if (problems.length) throw new InputError(`${where}: ${problems.join('; ')}`);
  return { targets, saved };
}

/** PEFT's default init of A from the run's seed; 'LoRA' in ASCII keeps this stream apart from the heads'. */
export function initialAdapter(targets: readonly LoraTarget[], r: number, seed: number): Map<string, HostTensor> {
  const rng = new Rng((seed ^ 0x4c6f5241) >>> 0);
  const out = new Map<string, HostTensor>();
  for (const t of targets) {
    // kaiming_uniform_(a=sqrt(5)) on lora_A.weight [r, in]: gain sqrt(2 / 6), bound = gain * sqrt(3 / in) = 1 / sqrt(in).
    const bound = 1 / Math.sqrt(t.inFeatures);
    const aT = new Float32Array(r * t.inFeatures); // PEFT's [r, in], filled in its row-major order
    for (let i = 0; i < aT.length; i++) aT[i] = (2 * rng.next() - 1) * bound;
    out.set(t.a, transpose2d({ shape: [r, t.inFeatures], data: aT }));
    out.set(t.b, { shape: [r, t.outFeatures], data: new Float32Array(r * t.outFeatures) });
  }
  return out;
}

/** Which training forward this is: it picks the dropout masks (the same ones again on a resumed run). */
export interface TrainPass {
  /** training.seed */
  seed: number;
  /** The optimizer step being taken, 1-based. */
  step: number;
  /** Global training-set index of each example (batch row b), in batch order. */
  examples: readonly number[];
}

/** 32-bit seed of one example's mask stream for one target; 'Drop' in ASCII keeps it apart from the other streams. */
export function dropoutSeed(seed: number, step: number, example: number, target: number): number {
  let h = 0x44726f70;
  for (const v of [seed, step, example, target]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/**
 * The next (rows, cols) inverted-dropout mask of `rng`, row-major: 0 with probability p, else 1 / (1 - p)
 * (float32, as torch multiplies). One uint32 draw per element: dropped when draw < p * 2^32.
 */
export function dropoutMask(rng: Rng, p: number, rows: number, cols: number): Float32Array {
  const keep = Math.fround(1 / (1 - p));
  const threshold = p * 4294967296;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.nextUint32() < threshold ? 0 : keep;
  return out;
}

let counter = 0;

/**
 * The adapter's variables and the forward's weight substitution. `trainable` is what training
 * updates, in the flattening order: A, B of each target (layer order), then the modules_to_save
 * parameters (base variables, which stay trainable).
 */
export class LoraAdapter {
  readonly params = new Map<string, tf.Variable>();
  readonly trainable: { specs: ParamSpec[]; params: Map<string, tf.Variable> };

  constructor(
    readonly lora: ResolvedLora,
    readonly targets: readonly LoraTarget[],
    readonly saved: readonly HFTensorRule[],
    values: ReadonlyMap<string, HostTensor>,
    base: { specs: readonly ParamSpec[]; params: ReadonlyMap<string, tf.Variable> },
  ) {
    const specs: ParamSpec[] = [];
    for (const t of targets) {
      for (const [name, shape] of [[t.a, [t.inFeatures, lora.r]], [t.b, [lora.r, t.outFeatures]]] as const) {
        const v = values.get(name);
        if (!v || v.shape.join() !== shape.join()) throw new InputError(`adapter tensor ${name}: expected shape [${shape}], got ${v ? `[${v.shape}]` : 'none'}`);
        this.params.set(name, tf.variable(tf.tensor(v.data, [...shape]), true, `lora${counter++}_${name.replace(/[^A-Za-z0-9_./-]/g, '_')}`));
        specs.push({ name, shape: [...shape], init: 'zeros' });
      }
    }
    const savedNames = new Set(saved.flatMap((r) => r.internal));
    const params = new Map(this.params);
    for (const s of base.specs) {
      if (!savedNames.has(s.name)) continue;
      specs.push(s);
      params.set(s.name, base.params.get(s.name) as tf.Variable);
    }
    this.trainable = { specs, params };
  }

  get numParams(): number {
    return this.trainable.specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  }

  /** The base map with each target weight replaced by W + scale * A @ B[:, cols] (tensors of the caller's scope). */
  effective(base: Params): Params {
    const p = new Map(base);
    for (const t of this.targets) {
      const a = this.params.get(t.a) as tf.Tensor2D;
      const b = this.params.get(t.b) as tf.Tensor2D; // (r, out)
      // c_attn: split B's r rows (cheap), not the (in, out) product: a column split of a large matrix
      // is a slow strided copy on the native backend (SplitV was 70% of a GPT-2 LoRA forward).
      let from = 0;
      for (const w of t.weights) {
        const cols = base.get(w)!.shape[1]!;
        const bPart = t.weights.length === 1 ? b : tf.slice(b, [0, from], [b.shape[0], cols]);
        from += cols;
        p.set(w, tf.add(base.get(w)!, tf.mul(linear(a, bPart), this.lora.scale)));
      }
    }
    return p;
  }

  /**
   * Runs f (a forward over the UNCHANGED base map `base`) with every linear(x, w) on a target weight w
   * adding scale * (drop(x) @ A) @ B[:, cols of w]. The lookup tables live for this call only. f's
   * tensors belong to the caller's scope (tf.variableGrads keeps them for backward).
   */
  withDropout<T>(base: Params, pass: TrainPass, f: () => T): T {
    const p = this.lora.dropout;
    const s = this.lora.scale;
    // weight tensor -> its target, and the columns of B it owns (c_attn: wq | wk | wv)
    const byWeight = new Map<tf.Tensor, { target: number; from: number; cols: number }>();
    this.targets.forEach((t, target) => {
      let from = 0;
      for (const w of t.weights) {
        const cols = base.get(w)!.shape[1]!;
        byWeight.set(base.get(w)!, { target, from, cols });
        from += cols;
      }
    });
    const rngs = new Map<number, Rng[]>(); // target -> one mask stream per example
    const dropped = new Map<number, Map<tf.Tensor, tf.Tensor2D>>(); // target -> x -> drop(x) @ A (N, r)
    const hook = (x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D | undefined => {
      const at = byWeight.get(w);
      if (!at) return undefined;
      const t = this.targets[at.target];
      const perX = dropped.get(at.target) ?? new Map<tf.Tensor, tf.Tensor2D>();
      dropped.set(at.target, perX);
      let xa = perX.get(x);
      if (!xa) {
        const streams = rngs.get(at.target) ?? pass.examples.map((e) => new Rng(dropoutSeed(pass.seed, pass.step, e, at.target)));
        rngs.set(at.target, streams);
        const [N, inF] = x.shape;
        // Rows are example-major: B*T token rows, or B rows (BERT's pooler.dense).
        const rows = N / streams.length;
        if (!Number.isInteger(rows)) throw new RingtuneError(`LoRA dropout: ${N} input rows for ${streams.length} examples (internal error: the training pass does not match the batch)`);
        const data = new Float32Array(N * inF);
        streams.forEach((rng, b) => data.set(dropoutMask(rng, p, rows, inF), b * rows * inF));
        const mask = tf.tensor2d(data, [N, inF]);
        xa = linear(tf.mul(x, mask), this.params.get(t.a) as tf.Tensor2D); // (N, r)
        perX.set(x, xa);
      }
      const b = this.params.get(t.b) as tf.Tensor2D; // (r, out)
      const bCols = t.weights.length === 1 ? b : tf.slice(b, [0, at.from], [b.shape[0], at.cols]);
      return tf.mul(linear(xa, bCols), s) as tf.Tensor2D; // (N, cols)
    };
    return withLinearHook(hook, f);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}
