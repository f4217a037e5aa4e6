/** training.optimizer -> the optimizer over the flat buffer, with the job's hyperparameters and decay groups. */
import { Adam } from './adam.ts';
import { AdamW } from './adamw.ts';
import { Lion } from './lion.ts';
import type { Optimizer, OptimizerSettings } from './optimizer.ts';
import { SGD } from './sgd.ts';

export function createOptimizer(t: OptimizerSettings, size: number, decay: Uint8Array): Optimizer {
  const adam = { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay };
  switch (t.optimizer) {
    case 'sgd':
      return new SGD(size, { momentum: t.momentum, dampening: t.dampening, nesterov: t.nesterov, weightDecay: t.weightDecay }, decay);
    case 'adam':
      return new Adam(size, adam, decay);
    case 'adamw':
      return new AdamW(size, adam, decay);
    case 'lion':
      return new Lion(size, { beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay }, decay);
  }
}
