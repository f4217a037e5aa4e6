/**
 * Adam (Kingma & Ba 2015) as torch.optim.Adam, over one flat float32 parameter buffer. Weight decay is
 * L2 added to the gradient (coupled, unlike AdamW's decoupled decay), only where decay[i]:
 *   g <- g + lambda * theta
 *   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
 *   theta <- theta - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)     (eps placed as torch)
 * Moments are float32 like torch's; the per-step scalars are computed once in double, as adamw.ts does.
 * JavaScript only: the addon's loop is AdamW's, and Adam's L2 term would change its arithmetic.
 */
import { biasCorrection, type AdamWConfig } from './adamw.ts';
import { checkDecayMask, checkLengths, restoreBuffers, type Optimizer, type OptimizerState } from './optimizer.ts';

/** The same hyperparameters as AdamW; only what weightDecay means differs. */
export type AdamConfig = AdamWConfig;

export class Adam implements Optimizer {
  readonly kind = 'adam';
  readonly m: Float32Array;
  readonly v: Float32Array;
  step = 0;

  /** decay[i] = 1 where weight decay applies (matrices, embeddings), 0 for biases and norm gains. */
  constructor(readonly size: number, readonly config: AdamConfig, readonly decay: Uint8Array) {
    checkDecayMask(decay, size);
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  update(params: Float32Array, grads: Float32Array, lr: number): void {
    checkLengths(this.kind, this.size, params, grads);
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.config;
    this.step += 1;
    const { stepSize, sqrtBc2 } = biasCorrection(this.config, this.step, lr);
    const { m, v, decay } = this;
    for (let i = 0; i < params.length; i++) {
      const g = decay[i] ? grads[i] + weightDecay * params[i] : grads[i];
      const mi = (m[i] = b1 * m[i] + (1 - b1) * g);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * g * g);
      params[i] -= (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }

  get buffers(): Readonly<Record<string, Float32Array>> {
    return { m: this.m, v: this.v };
  }

  restore(s: OptimizerState): void {
    restoreBuffers(this.kind, this.size, this.buffers, s);
    this.step = s.step;
  }
}
