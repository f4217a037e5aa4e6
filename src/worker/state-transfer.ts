/**
 * The training state an elastic re-form hands over (docs/reliability.md): the source rank's trainable
 * parameters, every optimizer state buffer and the step counts, packed into one float32 buffer that
 * GrpcRing.broadcast copies bit for bit to every rank of the new ring.
 *
 *   [ params (P) | optimizer buffers by sorted name (B x P) | optimizer step, training step (as uint32 bits) ]
 *
 * The two counts travel as raw uint32 bits in float32 slots: the broadcast copies bits, so any count
 * survives (a float32 value would only hold integers up to 2^24 exactly).
 */
import type { Optimizer } from '../optim/optimizer.ts';
import type { FlatParams } from '../train/flat-params.ts';

const COUNTS = 2;

/** Buffer length for these parameters and this optimizer. */
export function stateLength(flat: FlatParams, optimizer: Optimizer): number {
  return flat.size * (1 + Object.keys(optimizer.buffers).length) + COUNTS;
}

/** Packs this rank's state after `step` applied steps (only the source's contents matter). */
export function packState(flat: FlatParams, optimizer: Optimizer, step: number): Float32Array {
  const out = new Float32Array(stateLength(flat, optimizer));
  out.set(flat.params, 0);
  let at = flat.size;
  for (const name of Object.keys(optimizer.buffers).sort()) {
    out.set(optimizer.buffers[name]!, at);
    at += flat.size;
  }
  const counts = new Uint32Array(out.buffer, at * 4, COUNTS);
  counts[0] = optimizer.step;
  counts[1] = step;
  return out;
}

/** Copies a broadcast state in (parameters into the model, optimizer state); returns the training step. */
export function unpackState(buf: Float32Array, flat: FlatParams, optimizer: Optimizer): number {
  if (buf.length !== stateLength(flat, optimizer)) throw new RangeError(`state of ${buf.length} values for ${stateLength(flat, optimizer)}`);
  flat.params.set(buf.subarray(0, flat.size));
  flat.writeParams();
  const buffers: Record<string, Float32Array> = {};
  let at = flat.size;
  for (const name of Object.keys(optimizer.buffers).sort()) {
    buffers[name] = buf.subarray(at, at + flat.size);
    at += flat.size;
  }
  const counts = new Uint32Array(buf.buffer, buf.byteOffset + at * 4, COUNTS);
  optimizer.restore({ step: counts[0]!, buffers });
  return counts[1]!;
}
