/**
 * Element-wise arithmetic over flat host Float32Arrays (gradients, parameters): the native addon's
 * loops where it is built (threaded), else the JavaScript loops. Both are bit-identical (each result
 * is the double operation rounded to float32), so replicas with and without the addon agree.
 */
import { optimAddon } from '../model/native/kernels/optim.ts';

/** g[i] *= s, with s a double (as JavaScript multiplies). */
export function scaleInPlace(g: Float32Array, s: number, useNative = true): void {
  const native = useNative ? optimAddon() : null;
  if (native) native.scaleInPlace(g, s);
  else for (let i = 0; i < g.length; i++) g[i] *= s;
}

/** dst[i] += src[i] (same length). */
export function addInto(dst: Float32Array, src: Float32Array): void {
  const native = optimAddon();
  if (native) native.addInto(dst, src);
  else for (let i = 0; i < src.length; i++) dst[i] += src[i];
}
