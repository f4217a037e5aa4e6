/**
 * Every error ringtune raises on purpose is a RingtuneError: a stable `name` callers can switch on,
 * a message that says what went wrong and what to do next, and the underlying `cause` when there is one.
 */
export class RingtuneError extends Error {
  override readonly name: string = 'RingtuneError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bad user input: a config field, a model directory, a data record. The message names the place. */
export class InputError extends RingtuneError {
  override readonly name: string = 'InputError';
}

/** A checkpoint / safetensors file that cannot be read back. Names the file and the tensor. */
export class CheckpointCorruptError extends RingtuneError {
  override readonly name: string = 'CheckpointCorruptError';
}

/** Weight names that do not match the model family's mapping table. Lists the names. */
export class WeightMappingError extends RingtuneError {
  override readonly name: string = 'WeightMappingError';
}

/** A backend or native package that cannot be loaded here. */
export class BackendError extends RingtuneError {
  override readonly name: string = 'BackendError';
}

/**
 * A training step whose loss or gradient norm is not finite (training.on_nonfinite: fail). Thrown
 * after the all-reduce, so every rank of a ring throws it at the same step. Names the step, and the
 * rank when the run is distributed.
 */
export class NonFiniteError extends RingtuneError {
  override readonly name: string = 'NonFiniteError';
  constructor(message: string, readonly step: number, readonly rank?: number) {
    super(message);
  }
}
