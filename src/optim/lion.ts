/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2; as lucidrains'
 * lion-pytorch) over one flat float32 parameter buffer. Weight decay is decoupled, only where decay[i]:
 *   c <- b1 m + (1 - b1) g
 *   theta <- theta (1 - lr lambda) - lr sign(c)          (sign(0) = 0, as torch.sign)
 *   m <- b2 m + (1 - b2) g
 * One state buffer (m, float32) instead of Adam's two; every step moves each parameter by exactly lr
 * (plus decay), so Lion wants a smaller lr and a larger weight decay than AdamW (the paper: 3-10x).
 * JavaScript only: the addon has no Lion.
 */
import { checkDecayMask, checkLengths, restoreBuffers, type Optimizer, type OptimizerState } from './optimizer.ts';

export interface LionConfig {
  beta1: number;
  beta2: number;
  weightDecay: number;
}

export class Lion implements Optimizer {
  readonly kind = 'lion';
  readonly m: Float32Array;
  step = 0;

  /** decay[i] = 1 where weight decay applies (matrices, embeddings), 0 for biases and norm gains. */
  constructor(readonly size: number, readonly config: LionConfig, readonly decay: Uint8Array) {
    checkDecayMask(decay, size);
    this.m = new Float32Array(size);
  }

  update(params: Float32Array, grads: Float32Array, lr: number): void {
    checkLengths(this.kind, this.size, params, grads);
    const { beta1: b1, beta2: b2, weightDecay } = this.config;
    const decayFactor = 1 - lr * weightDecay;
    const { m, decay } = this;
    this.step += 1;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i];
      const p = decay[i] ? params[i] * decayFactor : params[i];
      params[i] = p - lr * Math.sign(b1 * m[i] + (1 - b1) * g);
      m[i] = b2 * m[i] + (1 - b2) * g;
    }
  }

  get buffers(): Readonly<Record<string, Float32Array>> {
    return { m: this.m };
  }

  restore(s: OptimizerState): void {
    restoreBuffers(this.kind, this.size, this.buffers, s);
    this.step = s.step;
  }
}
