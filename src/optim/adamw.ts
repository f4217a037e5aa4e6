/**
 * AdamW (Loshchilov & Hutter 2019, as torch.optim.AdamW) over one flat float32 parameter buffer:
 *   theta <- theta - lr * lambda * theta                      (decoupled decay, only where decay[i])
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Flat host buffers because the gradients arrive flat from the ring all-reduce; every replica runs the
 * same loop on the same numbers, so replicas stay bit-identical. Moments are float32 like torch's.
 * Where the native addon is built, update() runs native/src/optim.cc (OpenMP), which does the same double
 * operations in the same order and is bit-identical to updateJs() (tests/optim/adamw-native.test.ts),
 * so replicas with and without the addon still agree.
 */
import { optimAddon } from '../model/native/kernels/optim.ts';
import { checkDecayMask, checkLengths, restoreBuffers, type Optimizer, type OptimizerState } from './optimizer.ts';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Adam's bias-corrected step size lr / (1 - b1^t) and sqrt(1 - b2^t), in double (Adam and AdamW alike). */
export function biasCorrection(c: Pick<AdamWConfig, 'beta1' | 'beta2'>, step: number, lr: number): { stepSize: number; sqrtBc2: number } {
  return { stepSize: lr / (1 - Math.pow(c.beta1, step)), sqrtBc2: Math.sqrt(1 - Math.pow(c.beta2, step)) };
}

export class AdamW implements Optimizer {
  readonly kind = 'adamw';
  readonly m: Float32Array;
  readonly v: Float32Array;
  step = 0;

  /** decay[i] = 1 where weight decay applies (matrices, embeddings), 0 for biases and norm gains. */
  constructor(readonly size: number, readonly config: AdamWConfig, readonly decay: Uint8Array) {
    checkDecayMask(decay, size);
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** One update in place. `grads` is the (already averaged and clipped) gradient. */
  update(params: Float32Array, grads: Float32Array, lr: number): void {
    const native = optimAddon();
    if (!native) return this.updateJs(params, grads, lr);
    checkLengths(this.kind, this.size, params, grads);
    const { beta1: b1, beta2: b2, eps } = this.config;
    const { stepSize, sqrtBc2, decayFactor } = this.nextStep(lr);
    native.adamw(params, grads, this.m, this.v, this.decay, b1, b2, eps, stepSize, sqrtBc2, decayFactor);
  }

  /** The JavaScript loop (the definition; also the path without the addon). */
  updateJs(params: Float32Array, grads: Float32Array, lr: number): void {
    checkLengths(this.kind, this.size, params, grads);
    const { beta1: b1, beta2: b2, eps } = this.config;
    const { stepSize, sqrtBc2, decayFactor } = this.nextStep(lr);
    const { m, v, decay } = this;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i];
      const p = decay[i] ? params[i] * decayFactor : params[i];
      const mi = (m[i] = b1 * m[i] + (1 - b1) * g);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * g * g);
      // torch: denom = sqrt(v) / sqrt(bc2) + eps; theta -= (lr / bc1) * m / denom
      params[i] = p - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }

  /** Advances the step count and returns the per-step scalars, computed once in double for both paths. */
  private nextStep(lr: number): { stepSize: number; sqrtBc2: number; decayFactor: number } {
    this.step += 1;
    return { ...biasCorrection(this.config, this.step, lr), decayFactor: 1 - lr * this.config.weightDecay };
  }

  get buffers(): Readonly<Record<string, Float32Array>> {
    return { m: this.m, v: this.v };
  }

  restore(s: OptimizerState): void {
    restoreBuffers(this.kind, this.size, this.buffers, s);
    this.step = s.step;
  }
}
