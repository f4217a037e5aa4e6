/**
 * One flat float32 view of a model's trainable parameters and gradients, in spec order (full
 * fine-tuning: every parameter; LoRA: the adapter pairs and modules_to_save, Model.trainable). The buffers
 * are allocated once: fresh memory costs ~15 us per page here (notes/machine-perf.md), and the ring
 * all-reduce sends this buffer as it is.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '../model/model.ts';
import { numel, type ParamSpec } from '../model/params.ts';
import { peekNative } from '../model/native/backend.ts';
import { addInto } from '../optim/flat-math.ts';

/**
 * Points a native variable's storage at `view` (whose values become the variable's) when nothing else
 * shares its buffer; false elsewhere.
 */
function bindToView(v: tf.Variable, view: Float32Array): boolean {
  const live = peekNative(v);
  if (!live || live.backend.refCount(v.dataId) !== 1 || live.values.length !== view.length) return false;
  live.backend.rebind(v.dataId, view);
  return true;
}

export type NoDecayGroup = 'biases' | 'norms' | 'embeddings';

export class FlatParams {
  /** The trainable parameters, in buffer order (Model.trainable). */
  readonly specs: readonly ParamSpec[];
  readonly vars: ReadonlyMap<string, tf.Variable>;
  readonly names: string[];
  readonly offsets: number[];
  readonly size: number;
  readonly params: Float32Array;
  /** [gradients..., loss sum, count, stop votes]: what the ring all-reduce sums in one collective. */
  readonly reduceBuffer: Float32Array;
  readonly grads: Float32Array;
  /**
   * The three slots after the gradients: [0] loss sum, [1] loss-token / example count, [2] stop votes.
   * The worker all-reduces them as the buffer's exact tail (ring-allreduce.ts exactTail): summed in fp32
   * whatever the gradient's wire codec, so the count and the 1/count scale are exact under bf16 too.
   */
  readonly extras: Float32Array;

  constructor(readonly model: Model) {
    ({ specs: this.specs, params: this.vars } = model.trainable);
    this.names = this.specs.map((s) => s.name);
    this.offsets = [];
    let total = 0;
    for (const s of this.specs) {
      this.offsets.push(total);
      total += numel(s.shape);
    }
    this.size = total;
    this.params = new Float32Array(total);
    // [gradient sums..., loss sum, count, stop votes]: one collective carries all of a step's sums.
    this.reduceBuffer = new Float32Array(total + 3);
    this.grads = this.reduceBuffer.subarray(0, total);
    this.extras = this.reduceBuffer.subarray(total);
  }

  /**
   * 1 where weight decay applies. `noDecay` groups are excluded: `biases` (1-D tensors other than
   * norm gains), `norms` (LayerNorm/RMSNorm gains and biases), `embeddings` (token/position/type
   * tables). The default [biases, norms] is the usual AdamW recipe (nanoGPT, transformers).
   */
  decayMask(noDecay: readonly NoDecayGroup[] = ['biases', 'norms']): Uint8Array {
    const mask = new Uint8Array(this.size);
    this.specs.forEach((s, k) => {
      const group: NoDecayGroup | 'matrices' = /norm/.test(s.name) ? 'norms' : s.name.startsWith('embed.') ? 'embeddings' : s.shape.length < 2 ? 'biases' : 'matrices';
      if (group === 'matrices' || !noDecay.includes(group)) mask.fill(1, this.offsets[k], this.offsets[k] + numel(s.shape));
    });
    return mask;
  }

  /**
   * Copies the variables into the flat buffer. On the native backend each variable's storage then
   * becomes a view of its slice of `params`, so AdamW's in-place update *is* the model update and the
   * parameters are held once, not twice (124M parameters: 0.5 GB saved).
   */
  async readParams(): Promise<void> {
    for (let k = 0; k < this.names.length; k++) {
      const v = this.vars.get(this.names[k])!;
      const view = this.params.subarray(this.offsets[k], this.offsets[k] + numel(v.shape));
      view.set(peekNative(v)?.values ?? ((await v.data()) as Float32Array));
      bindToView(v, view);
    }
  }

  /** Adds (accumulate) or copies gradients keyed by variable name, as tf.variableGrads returns them. */
  async readGrads(grads: tf.NamedTensorMap, accumulate: boolean): Promise<void> {
    for (let k = 0; k < this.names.length; k++) {
      const g = grads[this.vars.get(this.names[k])!.name];
      // On the native backend the values are read in place: no copy, and the pooled buffer stays recyclable.
      const data = peekNative(g)?.values ?? ((await g.data()) as Float32Array);
      const dst = this.grads.subarray(this.offsets[k], this.offsets[k] + data.length);
      if (accumulate) addInto(dst, data);
      else dst.set(data);
    }
  }

  /** Copies the flat parameters back into the model's variables. */
  writeParams(): void {
    for (let k = 0; k < this.names.length; k++) {
      const v = this.vars.get(this.names[k])!;
      const values = this.params.subarray(this.offsets[k], this.offsets[k] + numel(v.shape));
      // Native: a variable bound by readParams already is this view; one replaced since (a checkpoint
      // load assigns new tensors) is bound again. Elsewhere the values are copied into a new tensor.
      const live = peekNative(v);
      if (live?.values === values || (live && bindToView(v, values))) continue;
      tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
    }
  }
}
