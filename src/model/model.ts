/**
 * A model = config + task + parameter variables (internal names, (in, out) layouts) + a forward pass
 * composed from the family body and the task head. Loading/saving Hugging Face files is in model-dir.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import { bertBody, bertParamSpecs } from './bert.ts';
import type { ModelConfig, Task } from './config.ts';
import { gpt2Body, gpt2ParamSpecs } from './gpt2.ts';
import { classificationHead, lmHead } from './heads.ts';
import type { LayerCache } from './layers/attention.ts';
import { llamaBody, llamaParamSpecs } from './llama.ts';
import type { LoraAdapter, TrainPass } from './lora.ts';
import { initialValues, numel, type ParamSpec, type Params } from './params.ts';
import type { HostTensor } from './safetensors.ts';
import type { BodyInput, BodyOutput } from './types.ts';

export interface ModelInput {
  ids: tf.Tensor2D; // (B, T) int32
  /** (B, T) 1/0; BERT masks padded keys with it. Decoders use right padding and need none. */
  attentionMask?: tf.Tensor2D;
  tokenTypeIds?: tf.Tensor2D;
  /** Real length of each row (classification pools at lengths[b] - 1 for decoders). */
  lengths?: readonly number[];
  /** Set by the training step only: LoRA dropout acts in training forwards (and picks its masks from this). */
  train?: TrainPass;
}

const FAMILIES = {
  gpt2: { specs: gpt2ParamSpecs, body: gpt2Body },
  llama: { specs: llamaParamSpecs, body: llamaBody },
  bert: { specs: bertParamSpecs, body: bertBody },
} satisfies Record<string, { specs: (c: ModelConfig, t: Task) => ParamSpec[]; body: (c: ModelConfig, p: Map<string, tf.Tensor>, x: BodyInput) => BodyOutput }>;

export function paramSpecs(config: ModelConfig, task: Task): ParamSpec[] {
  if (config.family === 'bert' && task !== 'classification') throw new InputError('bert models support only task "classification"');
  if (config.dModel % config.nHeads !== 0 && config.family !== 'llama') throw new InputError(`hidden size ${config.dModel} is not divisible by ${config.nHeads} heads`);
  if (config.nHeads % config.nKvHeads !== 0) throw new InputError(`num_attention_heads ${config.nHeads} is not a multiple of num_key_value_heads ${config.nKvHeads}`);
  return FAMILIES[config.family].specs(config, task);
}

export class Model {
  readonly specs: ParamSpec[];
  /**
   * LoRA (lora.ts): the frozen base's forward sees W + scale * A @ B per target (a training forward with
   * lora dropout instead adds scale * (drop(x) A) B inside linear()); absent = full fine-tuning.
   */
  private lora?: LoraAdapter;

  constructor(
    readonly config: ModelConfig,
    readonly task: Task,
    /** Internal name -> trainable variable, in spec order (the flattening order for all-reduce). */
    readonly params: Map<string, tf.Variable>,
  ) {
    this.specs = paramSpecs(config, task).filter((s) => params.has(s.name));
  }

  /** Random initialisation from a seed: identical values on every backend and machine. */
  static random(config: ModelConfig, task: Task, seed: number): Model {
    const rng = new Rng(seed);
    const params = new Map<string, tf.Variable>();
    for (const spec of paramSpecs(config, task)) {
      params.set(spec.name, tf.variable(tf.tensor(initialValues(spec, rng), spec.shape), true, uniqueName(spec.name)));
    }
    return new Model(config, task, params);
  }

  /** From host tensors already in internal names and layouts (see weights.ts for HF files). */
  static fromHost(config: ModelConfig, task: Task, tensors: ReadonlyMap<string, HostTensor>): Model {
    const params = new Map<string, tf.Variable>();
    for (const spec of paramSpecs(config, task)) {
      const t = tensors.get(spec.name);
      if (!t) continue;
      params.set(spec.name, tf.variable(tf.tensor(t.data, spec.shape), true, uniqueName(spec.name)));
    }
    return new Model(config, task, params);
  }

  get numParams(): number {
    return this.specs.reduce((n, s) => n + numel(s.shape), 0);
  }

  get adapter(): LoraAdapter | undefined {
    return this.lora;
  }

  /**
   * What training updates, in the flattening order (FlatParams, checkpoints, the all-reduce): every
   * parameter in spec order, or with an adapter its A/B pairs and the modules_to_save parameters.
   */
  get trainable(): { readonly specs: readonly ParamSpec[]; readonly params: ReadonlyMap<string, tf.Variable> } {
    return this.lora ? this.lora.trainable : this;
  }

  /** The variables gradients are taken for (tf.variableGrads). */
  variables(): tf.Variable[] {
    return [...this.trainable.params.values()];
  }

  /** Freezes the base (except the adapter's modules_to_save) and routes the forward through the adapter. */
  attachAdapter(adapter: LoraAdapter): void {
    if (this.lora) throw new InputError('this model already has an adapter');
    this.lora = adapter;
    for (const [name, v] of this.params) v.trainable = adapter.trainable.params.has(name);
  }

  /** Folds the adapter into the base weights (W <- W + scale * A @ B, the forward's own arithmetic) and drops it. */
  mergeAdapter(): void {
    const lora = this.lora;
    if (!lora) return;
    tf.tidy(() => {
      const eff = lora.effective(this.params);
      for (const [name, v] of this.params) if (eff.get(name) !== v) v.assign(eff.get(name)!);
    });
    lora.dispose();
    this.lora = undefined;
    for (const v of this.params.values()) v.trainable = true;
  }

  /** The parameters the body reads: the variables, or with an adapter the effective weights. */
  private bodyParams(): Params {
    return this.lora ? this.lora.effective(this.params) : this.params;
  }

  private bodyInput(input: ModelInput, offset: number, cache?: LayerCache[]): BodyInput {
    const [B, T] = input.ids.shape;
    if (offset + T > this.config.maxPositions) {
      throw new InputError(`sequence of ${offset + T} tokens exceeds the model's ${this.config.maxPositions} positions`);
    }
    return { ids: input.ids, B, T, offset, attentionMask: input.attentionMask, tokenTypeIds: input.tokenTypeIds, cache };
  }

  /** causal-lm: logits (B*T, V); classification: logits (B, numLabels). */
  forward(input: ModelInput): tf.Tensor2D {
    const x = this.bodyInput(input, 0);
    const lora = this.lora;
    // LoRA dropout (training only): the body sees the base weights and linear() adds the dropped adapter term.
    if (lora && input.train && lora.lora.dropout > 0) return lora.withDropout(this.params, input.train, () => this.run(this.params, x, input));
    return this.run(this.bodyParams(), x, input);
  }

  private run(p: Params, x: BodyInput, input: ModelInput): tf.Tensor2D {
    const { hidden } = FAMILIES[this.config.family].body(this.config, p, x);
    if (this.task === 'causal-lm') return lmHead(p, hidden);
    return classificationHead(this.config, p, hidden, x.B, x.T, input.lengths);
  }

  /** Decoder step for generation: ids (B, T) at positions offset.., returns logits of the last position (B, V). */
  forwardCached(ids: tf.Tensor2D, offset: number, cache?: LayerCache[]): { logits: tf.Tensor2D; cache: LayerCache[] } {
    if (this.task !== 'causal-lm') throw new InputError('generation needs a causal-lm model');
    const x = this.bodyInput({ ids }, offset, cache);
    const p = this.bodyParams();
    const out = FAMILIES[this.config.family].body(this.config, p, x);
    const d = this.config.dModel;
    const last = tf.reshape(tf.slice(tf.reshape(out.hidden, [x.B, x.T, d]), [0, x.T - 1, 0], [x.B, 1, d]), [x.B, d]) as tf.Tensor2D;
    return { logits: lmHead(p, last), cache: out.cache };
  }

  /** Copies every parameter to host memory (internal names and layouts). */
  async toHost(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of this.params) out.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    return out;
  }

  dispose(): void {
    this.lora?.dispose();
    this.lora = undefined;
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

let counter = 0;
/** tfjs variable names are global to the engine; several models may live in one process. */
function uniqueName(name: string): string {
  return `m${counter}_${name}`.replace(/[^A-Za-z0-9_./-]/g, '_') + `_${counter++}`;
}
