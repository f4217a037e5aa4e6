/**
 * SGD with momentum, dampening and Nesterov, as torch.optim.SGD (the update PyTorch documents), over
 * one flat float32 parameter buffer. Weight decay is L2 added to the gradient, only where decay[i]:
 *   g <- g + lambda * theta
 *   momentum mu > 0:  b <- g on the first step (torch clones the gradient: no dampening yet),
 *                     b <- mu b + (1 - tau) g afterwards                          (tau = dampening)
 *                     g <- g + mu b  (nesterov)   or   g <- b
 *   theta <- theta - lr * g
 * With mu = 0 there is no momentum buffer at all (torch keeps none either), so no state but the step.
 * JavaScript only: the loop is one multiply-add per parameter and memory-bound; the addon has no SGD.
 */
import { checkDecayMask, checkLengths, restoreBuffers, type Optimizer, type OptimizerState } from './optimizer.ts';

export interface SGDConfig {
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

export const SGD_DEFAULTS: SGDConfig = { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 };

export class SGD implements Optimizer {
  readonly kind = 'sgd';
  /** The momentum buffer, or undefined when momentum is 0. */
  readonly momentumBuffer: Float32Array | undefined;
  step = 0;

  /** decay[i] = 1 where weight decay applies (matrices, embeddings), 0 for biases and norm gains. */
  constructor(readonly size: number, readonly config: SGDConfig, readonly decay: Uint8Array) {
    checkDecayMask(decay, size);
    const { momentum, dampening, nesterov } = config;
    if (!(momentum >= 0)) throw new RangeError(`SGD momentum must be >= 0, got ${momentum}`);
    // torch.optim.SGD's rule: Nesterov looks ahead along an undamped momentum.
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new RangeError('Nesterov momentum requires a momentum > 0 and zero dampening');
    this.momentumBuffer = momentum !== 0 ? new Float32Array(size) : undefined;
  }

  update(params: Float32Array, grads: Float32Array, lr: number): void {
    checkLengths(this.kind, this.size, params, grads);
    const { momentum: mu, dampening, nesterov, weightDecay } = this.config;
    const { decay, momentumBuffer: buf } = this;
    const first = this.step === 0;
    this.step += 1;
    for (let i = 0; i < params.length; i++) {
      let g = decay[i] ? grads[i] + weightDecay * params[i] : grads[i];
      if (buf) {
        const b = (buf[i] = first ? g : mu * buf[i] + (1 - dampening) * g);
        g = nesterov ? g + mu * b : b;
      }
      params[i] -= lr * g;
    }
  }

  get buffers(): Readonly<Record<string, Float32Array>> {
    return this.momentumBuffer ? { momentum_buffer: this.momentumBuffer } : {};
  }

  restore(s: OptimizerState): void {
    restoreBuffers(this.kind, this.size, this.buffers, s);
    this.step = s.step;
  }
}
