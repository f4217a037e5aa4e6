/**
 * What the training step, setup and checkpoints know of an optimizer: an in-place update over the flat
 * float32 parameter buffer, a step count, and named state buffers (each as long as the parameters) that
 * a checkpoint saves and a resume restores bit for bit. The algorithms are one per file (sgd.ts,
 * adam.ts, adamw.ts, lion.ts); create-optimizer.ts picks one from training.optimizer.
 * Imports nothing: config/ (schema.ts, memory.ts) takes the names and the state sizes from here
 * without loading tfjs.
 */

/** training.optimizer. */
export const OPTIMIZER_KINDS = ['sgd', 'adam', 'adamw', 'lion'] as const;
export type OptimizerKind = (typeof OPTIMIZER_KINDS)[number];

/** The training.* fields the optimizers read (CompiledJob['training'] has them all). */
export interface OptimizerSettings {
  optimizer: OptimizerKind;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** sgd only; 0 keeps no momentum buffer. */
  momentum: number;
  nesterov: boolean;
  dampening: number;
}

export interface OptimizerState {
  /** Updates taken so far. */
  step: number;
  /** The buffers by name (Optimizer.buffers' names), each `size` long. */
  buffers: Readonly<Record<string, Float32Array>>;
}

export interface Optimizer {
  readonly kind: OptimizerKind;
  /** Parameters (= length of params, grads and every state buffer). */
  readonly size: number;
  /** Updates taken so far: Adam's bias correction t, SGD's first-step rule. A skipped step takes none. */
  readonly step: number;
  /**
   * The state by name, the live buffers (not copies: a checkpoint writes per-parameter slices of them).
   * Names have no dots: a checkpoint stores `<buffer>.<parameter name>`.
   */
  readonly buffers: Readonly<Record<string, Float32Array>>;
  /** One update in place. `grads` is the (already averaged and clipped) gradient; decay applies where the mask is 1. */
  update(params: Float32Array, grads: Float32Array, lr: number): void;
  /** Copies a saved state in, so the next update equals the one the saving optimizer would have made. */
  restore(state: OptimizerState): void;
}

/** training.betas when the job gives none: torch.optim.Adam(W)'s, and the Lion paper's (and lion-pytorch's) for lion. */
export function defaultBetas(kind: OptimizerKind): [number, number] {
  return kind === 'lion' ? [0.9, 0.99] : [0.9, 0.999];
}

/** The state buffers an optimizer with these settings keeps (the optimizers agree: tests/optim/optimizer.test.ts). */
export function stateBufferNames(s: Pick<OptimizerSettings, 'optimizer' | 'momentum'>): string[] {
  if (s.optimizer === 'sgd') return s.momentum !== 0 ? ['momentum_buffer'] : [];
  if (s.optimizer === 'lion') return ['m'];
  return ['m', 'v'];
}

/** Checks that `state` has exactly the buffers `own` has, of the right length, and copies them in. */
export function restoreBuffers(kind: OptimizerKind, size: number, own: Readonly<Record<string, Float32Array>>, state: OptimizerState): void {
  const want = Object.keys(own).sort().join(', ') || 'none';
  const got = Object.keys(state.buffers).sort().join(', ') || 'none';
  if (want !== got) throw new RangeError(`${kind} keeps state ${want}, the saved state has ${got}`);
  for (const [name, buf] of Object.entries(state.buffers)) {
    if (buf.length !== size) throw new RangeError(`${kind} state "${name}" has ${buf.length} entries for ${size} parameters`);
  }
  for (const [name, buf] of Object.entries(own)) buf.set(state.buffers[name]);
}

/** A decay mask must cover every parameter. */
export function checkDecayMask(decay: Uint8Array, size: number): void {
  if (decay.length !== size) throw new RangeError(`decay mask has ${decay.length} entries for ${size} parameters`);
}

/** Every update checks the buffers it is given against the optimizer's size. */
export function checkLengths(kind: OptimizerKind, size: number, params: Float32Array, grads: Float32Array): void {
  if (params.length !== size || grads.length !== size) {
    throw new RangeError(`${kind} over ${size} parameters got ${params.length} parameters and ${grads.length} gradients`);
  }
}
