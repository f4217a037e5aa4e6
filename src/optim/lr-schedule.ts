/**
 * Learning-rate schedules with linear warmup (step counts from 0 = the first update):
 *   warmup (s < W):  lr * (s + 1) / W
 *   constant:        lr
 *   linear:          lr * (1 - (1 - m) * p)                p = (s - W) / max(1, S - W), clamped to [0, 1]
 *   cosine:          lr * (m + (1 - m) * (1 + cos(pi p)) / 2)
 * with m = minLrRatio and S = total steps (as transformers' get_*_schedule_with_warmup, plus a floor).
 */
export type ScheduleName = 'constant' | 'linear' | 'cosine';

export interface ScheduleConfig {
  name: ScheduleName;
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
  minLrRatio: number;
}

export function learningRate(c: ScheduleConfig, step: number): number {
  if (step < c.warmupSteps) return (c.peakLr * (step + 1)) / c.warmupSteps;
  if (c.name === 'constant') return c.peakLr;
  const p = Math.min(1, Math.max(0, (step - c.warmupSteps) / Math.max(1, c.totalSteps - c.warmupSteps)));
  const m = c.minLrRatio;
  if (c.name === 'linear') return c.peakLr * (1 - (1 - m) * p);
  return c.peakLr * (m + ((1 - m) * (1 + Math.cos(Math.PI * p))) / 2);
}
