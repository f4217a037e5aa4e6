/**
 * Early stopping on an eval metric: stop after `patience` evaluations without an improvement larger
 * than `minDelta`. Loss-like metrics (loss, perplexity) are minimised unless a mode is given.
 * The state (best, badEvals) is saved in checkpoints so a resumed run stops where the original would.
 */
import { InputError } from '../errors.ts';

export interface EarlyStoppingConfig {
  metric: string;
  patience: number;
  mode?: 'min' | 'max';
  minDelta: number;
}

export class EarlyStopper {
  readonly mode: 'min' | 'max';
  best: number;
  badEvals = 0;

  constructor(readonly config: EarlyStoppingConfig, restored?: { best: number; badEvals: number }) {
    this.mode = config.mode ?? (/loss|perplexity/.test(config.metric) ? 'min' : 'max');
    this.best = restored?.best ?? (this.mode === 'min' ? Infinity : -Infinity);
    this.badEvals = restored?.badEvals ?? 0;
  }

  /** Records one evaluation; true when training should stop. */
  update(result: Record<string, number>): boolean {
    const v = result[this.config.metric];
    if (v === undefined) {
      throw new InputError(`eval.early_stopping.metric "${this.config.metric}" is not computed; available: ${Object.keys(result).join(', ')}`);
    }
    const improved = this.mode === 'min' ? v < this.best - this.config.minDelta : v > this.best + this.config.minDelta;
    if (improved) {
      this.best = v;
      this.badEvals = 0;
      return false;
    }
    this.badEvals += 1;
    return this.badEvals >= this.config.patience;
  }

  state(): { best: number; badEvals: number } {
    return { best: this.best, badEvals: this.badEvals };
  }
}
