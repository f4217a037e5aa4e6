/**
 * Native kernels of the attention family (native/src/attention.cc), used by src/model/layers/attention.ts
 * and rope.ts when the backend has them:
 *   RtAttention      q (B*T, H*hd), k, v (B*T, Hkv*hd), [keyMask (B, T)] -> [ctx (B*T, H*hd), probs (B, H, T, T)]
 *   RtAttentionGrad  dctx, q, k, v, probs -> [dq, dk, dv]
 *   RtRope           x (rows, hd), cos, sin (P, hd) -> rotated x (attrs.inverse: the transposed rotation)
 * attrs of the attention kernels: B, T, H, Hkv, hd, causal, scale, offset (first query position, for the
 * causal mask).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeBackend, type NativeKernel } from '../backend.ts';
import type { F32 } from '../addon.ts';

interface AttentionAddon {
  attentionForward(q: F32, k: F32, v: F32, keyMask: F32 | null, ctx: F32, probs: F32, B: number, T: number, H: number,
    Hkv: number, hd: number, causal: boolean, scale: number, offset: number): void;
  attentionBackward(dctx: F32, q: F32, k: F32, v: F32, probs: F32, dq: F32, dk: F32, dv: F32, B: number, T: number,
    H: number, Hkv: number, hd: number, causal: boolean, scale: number, offset: number): void;
  rope(x: F32, cos: F32, sin: F32, y: F32, rows: number, hd: number, T: number, heads: number, offset: number, inverse: boolean): void;
}

export interface AttentionAttrs {
  B: number; T: number; H: number; Hkv: number; hd: number; causal: boolean; scale: number; offset: number;
}

export interface RopeAttrs {
  T: number; heads: number; offset: number; inverse?: boolean;
}

const addonOf = (backend: NativeBackend) => backend.addon as unknown as AttentionAddon;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function checkDims(kernel: string, a: AttentionAttrs, shapes: string): void {
  const ok = [a.B, a.T, a.H, a.Hkv, a.hd, a.offset].every((n) => Number.isInteger(n) && n >= 0) &&
    a.H >= 1 && a.Hkv >= 1 && a.hd >= 1 && a.H % a.Hkv === 0;
  if (!ok) throw new NativeKernelError(`native kernel ${kernel}: bad attrs B ${a.B}, T ${a.T}, H ${a.H}, Hkv ${a.Hkv}, hd ${a.hd}, offset ${a.offset} for ${shapes}`);
}

export const attentionKernels: NativeKernel[] = [
  {
    kernelName: 'RtAttention',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { q, k, v, keyMask } = inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo; keyMask?: tf.TensorInfo };
      const a = attrs as unknown as AttentionAttrs;
      const shapes = `q [${q.shape}], k [${k.shape}], v [${v.shape}]${keyMask ? `, keyMask [${keyMask.shape}]` : ''}`;
      checkDims('RtAttention', a, shapes);
      const { B, T, H, Hkv, hd } = a;
      if (!same(q.shape, [B * T, H * hd]) || !same(k.shape, [B * T, Hkv * hd]) || !same(v.shape, k.shape) ||
        (keyMask && !same(keyMask.shape, [B, T]))) {
        throw new NativeKernelError(`native kernel RtAttention: ${shapes} do not fit B ${B}, T ${T}, H ${H}, Hkv ${Hkv}, hd ${hd}`);
      }
      const ctx = backend.alloc(B * T * H * hd, 'RtAttention ctx');
      const probs = backend.alloc(B * H * T * T, 'RtAttention probs');
      addonOf(backend).attentionForward(backend.f32(q, 'RtAttention'), backend.f32(k, 'RtAttention'), backend.f32(v, 'RtAttention'),
        keyMask ? backend.f32(keyMask, 'RtAttention') : null, ctx, probs, B, T, H, Hkv, hd, !!a.causal, a.scale, a.offset);
      return [backend.out([B * T, H * hd], ctx), backend.out([B, H, T, T], probs)];
    },
  },
  {
    kernelName: 'RtAttentionGrad',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { dctx, q, k, v, probs } = inputs as Record<'dctx' | 'q' | 'k' | 'v' | 'probs', tf.TensorInfo>;
      const a = attrs as unknown as AttentionAttrs;
      const shapes = `dctx [${dctx.shape}], q [${q.shape}], k [${k.shape}], v [${v.shape}], probs [${probs.shape}]`;
      checkDims('RtAttentionGrad', a, shapes);
      const { B, T, H, Hkv, hd } = a;
      if (!same(q.shape, [B * T, H * hd]) || !same(dctx.shape, q.shape) || !same(k.shape, [B * T, Hkv * hd]) ||
        !same(v.shape, k.shape) || !same(probs.shape, [B, H, T, T])) {
        throw new NativeKernelError(`native kernel RtAttentionGrad: ${shapes} do not fit B ${B}, T ${T}, H ${H}, Hkv ${Hkv}, hd ${hd}`);
      }
      const dq = backend.alloc(B * T * H * hd, 'RtAttentionGrad dq');
      const dk = backend.alloc(B * T * Hkv * hd, 'RtAttentionGrad dk');
      const dv = backend.alloc(B * T * Hkv * hd, 'RtAttentionGrad dv');
      const f = (t: tf.TensorInfo) => backend.f32(t, 'RtAttentionGrad');
      addonOf(backend).attentionBackward(f(dctx), f(q), f(k), f(v), f(probs), dq, dk, dv, B, T, H, Hkv, hd, !!a.causal, a.scale, a.offset);
      return [backend.out(q.shape, dq), backend.out(k.shape, dk), backend.out(k.shape, dv)];
    },
  },
  {
    kernelName: 'RtRope',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, cos, sin } = inputs as Record<'x' | 'cos' | 'sin', tf.TensorInfo>;
      const { T, heads, offset, inverse } = attrs as unknown as RopeAttrs;
      const [rows, hd] = x.shape;
      if (x.shape.length !== 2 || !same(cos.shape, sin.shape) || cos.shape.length !== 2 || cos.shape[1] !== hd ||
        hd < 2 || hd % 2 !== 0 || T < 1 || heads < 1 || rows % (T * heads) !== 0 || offset < 0 || offset + T > cos.shape[0]) {
        throw new NativeKernelError(`native kernel RtRope: x [${x.shape}], cos [${cos.shape}], sin [${sin.shape}] do not fit T ${T}, heads ${heads}, offset ${offset}`);
      }
      const y = backend.alloc(rows * hd, 'RtRope output');
      addonOf(backend).rope(backend.f32(x, 'RtRope'), backend.f32(cos, 'RtRope'), backend.f32(sin, 'RtRope'), y, rows, hd, T, heads, offset, !!inverse);
      return backend.out([rows, hd], y);
    },
  },
];
