/**
 * Rotary position embeddings, Hugging Face's rotate-half convention (modeling_llama.py):
 *   inv_freq[i] = theta^(-2i/hd), i < hd/2;  angle(pos) = pos * cat(inv_freq, inv_freq)
 *   x' = x * cos(angle) + rotate_half(x) * sin(angle),  rotate_half(x) = cat(-x[hd/2:], x[:hd/2])
 * rotate_half is a fixed signed permutation, applied as x @ R so it stays a plain 2-D matMul
 * (slicing the last axis copies the whole tensor on wasm, notes/tfjs-backends.md).
 * On the native backend the rotation is one kernel (RtRope); its gradient is the transposed (inverse)
 * rotation, the same kernel with `inverse` set.
 */
import * as tf from '@tensorflow/tfjs-core';
import { linear } from './linear.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtRope',
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dy, saved, attrs) => {
    const [cos, sin] = saved;
    const a = attrs as { T: number; heads: number; offset: number; inverse?: boolean };
    // No entries for cos/sin: they are constant tables (a tape that needs them fails loudly).
    return { x: () => runKernel<tf.Tensor>('RtRope', { x: dy as tf.Tensor, cos, sin }, { ...a, inverse: !a.inverse }) };
  },
});

export interface RopeTables {
  cos: tf.Tensor2D; // (maxPositions, hd)
  sin: tf.Tensor2D; // (maxPositions, hd)
  rotate: tf.Tensor2D; // (hd, hd)
}

export function ropeTables(headDim: number, maxPositions: number, theta: number): RopeTables {
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * headDim);
  const sin = new Float32Array(maxPositions * headDim);
  for (let pos = 0; pos < maxPositions; pos++) {
    for (let i = 0; i < half; i++) {
      // Math.pow in float64 then rounded once, like torch computing inv_freq in float32 is close enough
      // at 1e-6; positions beyond ~1e4 would need care.
      const angle = pos * Math.pow(theta, (-2 * i) / headDim);
      cos[pos * headDim + i] = cos[pos * headDim + i + half] = Math.cos(angle);
      sin[pos * headDim + i] = sin[pos * headDim + i + half] = Math.sin(angle);
    }
  }
  const rot = new Float32Array(headDim * headDim);
  for (let j = 0; j < half; j++) {
    rot[(j + half) * headDim + j] = -1; // out[j] = -x[j + half]
    rot[j * headDim + j + half] = 1; // out[j + half] = x[j]
  }
  return {
    cos: tf.tensor2d(cos, [maxPositions, headDim]),
    sin: tf.tensor2d(sin, [maxPositions, headDim]),
    rotate: tf.tensor2d(rot, [headDim, headDim]),
  };
}

/** x: (B*T*H, hd) rows ordered (b, t, h); positions start at `offset`. Returns the same shape. */
export function applyRope(x: tf.Tensor2D, tables: RopeTables, B: number, T: number, H: number, offset: number): tf.Tensor2D {
  const hd = x.shape[1];
  if (hasKernel('RtRope')) return runKernel<tf.Tensor2D>('RtRope', { x, cos: tables.cos, sin: tables.sin }, { T, heads: H, offset });
  const cos = tf.reshape(tf.slice(tables.cos, [offset, 0], [T, hd]), [1, T, 1, hd]);
  const sin = tf.reshape(tf.slice(tables.sin, [offset, 0], [T, hd]), [1, T, 1, hd]);
  const x4 = tf.reshape(x, [B, T, H, hd]);
  const rotated = tf.reshape(linear(x, tables.rotate), [B, T, H, hd]);
  return tf.reshape(tf.add(tf.mul(x4, cos), tf.mul(rotated, sin)), [B * T * H, hd]);
}
