/**
 * y = x @ W (+ b) with W stored [in, out].
 *
 * Why a custom gradient: tfjs' default MatMul gradient uses transposeA/transposeB flags, which on the
 * wasm backend leave XNNPACK's fast path (~2 and ~0.7 GFLOP/s instead of 11-32, notes/tfjs-backends.md).
 * Materialising the transposes once and calling plain matMul is 5-15x faster for the backward pass.
 * Column sums (bias and norm-gain gradients) are ones(1, N) @ dy for the same reason: a reduction over
 * axis 0 transposes first and then runs a scalar loop.
 * On the native backend the whole layer is one kernel each way (RtLinear / RtLinearGrad: sgemm with
 * transpose flags, bias folded into the product), registered with its gradient below.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customGrad } from './custom-grad.ts';
import { hasKernel, runKernel } from '../native/kernels.ts';

tf.registerGradient({
  kernelName: 'RtLinear',
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved;
    const { hasBias = false, transW = false } = attrs as { hasBias?: boolean; transW?: boolean };
    const [dx, dw, db] = runKernel<tf.Tensor[]>('RtLinearGrad', { dy: dy as tf.Tensor, x, w }, { hasBias, transW });
    const g: Record<string, () => tf.Tensor> = { x: () => dx, w: () => dw };
    if (hasBias) g.bias = () => db;
    return g;
  },
});

/** x: (N, d) -> (d): the sum over rows, as a fast-path matMul. */
export function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

const matMulFastGrad = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D>((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
    },
  };
});

const matMulBiasFastGrad = customGrad<(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D>(
  (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, w]);
    return {
      value: tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dy2 = dy as tf.Tensor2D;
        return [tf.matMul(dy2, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy2), sumRows(dy2)];
      },
    };
  },
);

/**
 * x: (N, in), wT: (out, in) -> x @ wT^T (N, out): a tied LM head reading the (V, d) embedding table.
 * Native reads the table in place (BLAS transpose flag); elsewhere the transpose is materialised.
 */
export function linearTransposed(x: tf.Tensor2D, wT: tf.Tensor2D): tf.Tensor2D {
  if (hasKernel('RtLinear')) return runKernel<tf.Tensor2D>('RtLinear', { x, w: wT }, { hasBias: false, transW: true });
  return linear(x, tf.transpose(wT));
}

/**
 * Adds a term to the output of linear(x, w) for chosen weights: (x, w) -> (N, out) or undefined for
 * "nothing to add". LoRA with dropout (model/lora.ts) needs x @ W + s (drop(x) @ A) @ B, which no
 * merged weight expresses; the model's training forward installs the hook for its own duration only
 * (withLinearHook), so the body, the layers and the native kernels stay unaware of LoRA.
 */
export type LinearHook = (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D | undefined;

let linearHook: LinearHook | undefined;

/** Runs f with `hook` seen by every linear() call it makes; restored afterwards, also on a throw. */
export function withLinearHook<T>(hook: LinearHook, f: () => T): T {
  const outer = linearHook;
  linearHook = hook;
  try {
    return f();
  } finally {
    linearHook = outer;
  }
}

/** x: (N, in), w: (in, out), b: (out) -> (N, out). */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const extra = linearHook?.(x, w); // (N, out) or undefined
  const y = hasKernel('RtLinear') ? runKernel<tf.Tensor2D>('RtLinear', b ? { x, w, bias: b } : { x, w }, { hasBias: !!b })
    : b ? matMulBiasFastGrad(x, w, b) : matMulFastGrad(x, w);
  return extra ? tf.add(y, extra) : y;
}
