/**
 * The standard tfjs kernels that composed model code spends its time in, natively
 * (native/src/elementwise.cc): broadcasting binary arithmetic, unary math, reductions, softmax over the
 * last axis, transpose, slice, concat, tile, pad, gather, scatterND and casts.
 *
 * Same kernel names, attrs and results as tfjs-backend-cpu: + - * / min max, transpose, slice, concat,
 * tile, gather and scatter are bit-identical; exp/log/tanh/sigmoid/softmax are within a few float32 ulp;
 * sum/mean within 1 ulp. Inputs the native code does not cover (int32 arithmetic, bool, strings, a
 * 'float32' tensor still holding int32 values after a cpu identity cast) run the original cpu kernel
 * through `runCpuKernel`, wrapped the way kernels.ts wraps every fallback.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NativeKernelError, type NativeBackend, type NativeKernel, type NativeKernelFunc } from '../backend.ts';
import { numel } from '../../params.ts';

type F32 = Float32Array;
type I32 = Int32Array;

/** The functions native/src/elementwise.cc adds to the addon. */
interface ElementwiseAddon {
  ewBinary(op: number, a: F32, b: F32, out: F32, outShape: I32, aShape: I32, bShape: I32): void;
  ewUnary(op: number, x: F32, out: F32): void;
  ewReduce(op: number, x: F32, out: F32, outer: number, reduce: number, inner: number): void;
  ewSoftmax(x: F32, out: F32, rows: number, cols: number): void;
  ewTranspose(x: F32, out: F32, shape: I32, perm: I32): void;
  ewSlice(x: F32, out: F32, shape: I32, begin: I32, size: I32): void;
  ewConcat(xs: F32[], out: F32, outer: number, inners: I32): void;
  ewTile(x: F32, out: F32, shape: I32, reps: I32): void;
  /** Returns the position of the first out-of-range index, or -1. */
  ewGather(x: F32, indices: I32, out: F32, batch: number, outer: number, dim: number, slice: number, n: number): number;
  /** Returns the first update whose index is out of range, or -1. */
  ewScatterNd(indices: I32, updates: F32, out: F32, numUpdates: number, sliceRank: number, sliceSize: number, strides: I32, rows: number): number;
  ewPad(x: F32, out: F32, shape: I32, before: I32, after: I32, value: number): void;
  ewCast(kind: number, x: F32 | I32 | Uint8Array, out: F32 | I32 | Uint8Array): void;
}

type Args = Parameters<NativeKernelFunc>[0];
type KernelOut = tf.TensorInfo | tf.TensorInfo[];

const addonOf = (backend: NativeBackend) => backend.addon as unknown as ElementwiseAddon;
const i32 = (xs: readonly number[]) => Int32Array.from(xs);


/** Float32 values of a float32 tensor, or undefined when it is not stored as a Float32Array. */
function floatValues(backend: NativeBackend, t: tf.TensorInfo): F32 | undefined {
  if (t.dtype !== 'float32') return undefined;
  const v = backend.valuesOf(t);
  return v instanceof Float32Array ? v : undefined;
}

/** 32-bit words of a float32 or int32 tensor as a Float32Array view (for kernels that only move data). */
function wordValues(backend: NativeBackend, t: tf.TensorInfo): F32 | undefined {
  const v = backend.valuesOf(t);
  if (t.dtype === 'float32' && v instanceof Float32Array) return v;
  if (t.dtype === 'int32' && v instanceof Int32Array) return new Float32Array(v.buffer, v.byteOffset, v.length);
  return undefined;
}

/** An output of `n` words for a float32 (pooled) or int32 tensor, and the view the native code writes. */
function wordOutput(backend: NativeBackend, dtype: tf.DataType, shape: number[], what: string): { info: tf.TensorInfo; view: F32 } {
  const n = numel(shape);
  if (dtype === 'float32') {
    const v = backend.alloc(n, what);
    return { info: backend.out(shape, v), view: v };
  }
  const v = new Int32Array(n);
  return { info: backend.makeTensorInfo(shape, 'int32', v), view: new Float32Array(v.buffer, 0, n) };
}

/**
 * Runs tfjs-backend-cpu's kernel `name` on the native backend, as kernels.ts registers fallbacks:
 * reads inside it do not pin, and outputs that are new tensors over pooled buffers (views) are pinned.
 */
export function runCpuKernel(name: string, args: Args): KernelOut {
  const k = tf.getKernel(name, 'cpu');
  if (!k) throw new NativeKernelError(`native kernel ${name}: no cpu kernel to fall back to`);
  return args.backend.runFallback(k.kernelFunc, args as unknown as Parameters<tf.KernelFunc>[0]);
}

const BINARY = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, Pow: 6, SquaredDifference: 7 } as const;
const UNARY = {
  Exp: 0, Log: 1, Tanh: 2, Sigmoid: 3, Sqrt: 4, Rsqrt: 5, Neg: 6, Square: 7, Abs: 8, Reciprocal: 9, Relu: 10, Erf: 11,
} as const;
const REDUCE = { Sum: 0, Mean: 1, Max: 2, Min: 3 } as const;

function binaryKernel(name: keyof typeof BINARY): NativeKernel {
  return {
    kernelName: name,
    kernelFunc: (args) => {
      const { backend } = args;
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const av = floatValues(backend, a), bv = floatValues(backend, b);
      if (!av || !bv) return runCpuKernel(name, args);
      let shape: number[];
      try {
        shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      } catch {
        throw new NativeKernelError(`native kernel ${name}: shapes [${a.shape}] and [${b.shape}] do not broadcast`);
      }
      const pad = (s: number[]) => i32([...new Array(shape.length - s.length).fill(1), ...s]);
      const out = backend.alloc(numel(shape), `${name} output`);
      addonOf(backend).ewBinary(BINARY[name], av, bv, out, i32(shape), pad(a.shape), pad(b.shape));
      return backend.out(shape, out);
    },
  };
}

function unaryKernel(name: keyof typeof UNARY): NativeKernel {
  return {
    kernelName: name,
    kernelFunc: (args) => {
      const { backend } = args;
      const { x } = args.inputs as { x: tf.TensorInfo };
      const xv = floatValues(backend, x);
      if (!xv) return runCpuKernel(name, args);
      const out = backend.alloc(xv.length, `${name} output`);
      addonOf(backend).ewUnary(UNARY[name], xv, out);
      return backend.out([...x.shape], out);
    },
  };
}

/** Moves `axes` (a permutation's tail) last; returns the transposed copy, to release after use. */
function transposeTemp(backend: NativeBackend, xv: F32, shape: number[], perm: number[]): F32 {
  const t = backend.alloc(xv.length, 'reduction transpose');
  addonOf(backend).ewTranspose(xv, t, i32(shape), i32(perm));
  return t;
}

function reduceKernel(name: keyof typeof REDUCE): NativeKernel {
  return {
    kernelName: name,
    kernelFunc: (args) => {
      const { backend, attrs } = args;
      const { x } = args.inputs as { x: tf.TensorInfo };
      const xv = floatValues(backend, x);
      if (!xv) return runCpuKernel(name, args);
      // tfjs names Max's axes reductionIndices and the others' axis.
      const axisAttr = (name === 'Max' ? attrs.reductionIndices : attrs.axis) as number | number[];
      const keepDims = !!attrs.keepDims;
      let axes: number[];
      try {
        axes = tf.util.parseAxisParam(axisAttr, x.shape);
      } catch {
        throw new NativeKernelError(`native kernel ${name}: axis ${JSON.stringify(axisAttr)} is invalid for shape [${x.shape}]`);
      }
      const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
      const shape = keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
      const sorted = [...new Set(axes)].sort((p, q) => p - q);
      const contiguous = sorted.every((a, i) => i === 0 || a === sorted[i - 1] + 1);
      const out = backend.alloc(numel(outShape), `${name} output`);
      const ew = addonOf(backend);
      if (sorted.length === 0) {
        out.set(xv);
      } else if (contiguous) {
        const first = sorted[0], last = sorted[sorted.length - 1];
        ew.ewReduce(REDUCE[name], xv, out, numel(x.shape.slice(0, first)), numel(x.shape.slice(first, last + 1)), numel(x.shape.slice(last + 1)));
      } else {
        const perm = tf.backend_util.getAxesPermutation(axes, x.shape.length) ?? [...x.shape.keys()];
        const t = transposeTemp(backend, xv, [...x.shape], perm);
        const R = numel(sorted.map((a) => x.shape[a]));
        ew.ewReduce(REDUCE[name], t, out, xv.length / Math.max(R, 1), R, 1);
        backend.pool.release(t);
      }
      return backend.out(shape, out);
    },
  };
}

const softmaxKernel: NativeKernel = {
  kernelName: 'Softmax',
  kernelFunc: (args) => {
    const { backend } = args;
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const dim = args.attrs.dim as number;
    const rank = logits.shape.length;
    const xv = floatValues(backend, logits);
    if (!xv || rank === 0 || (dim !== -1 && dim !== rank - 1)) return runCpuKernel('Softmax', args);
    const cols = logits.shape[rank - 1];
    const out = backend.alloc(xv.length, 'Softmax output');
    addonOf(backend).ewSoftmax(xv, out, cols === 0 ? 0 : xv.length / cols, cols);
    return backend.out([...logits.shape], out);
  },
};

const transposeKernel: NativeKernel = {
  kernelName: 'Transpose',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const perm = args.attrs.perm as number[];
    const xv = wordValues(backend, x);
    if (!xv) return runCpuKernel('Transpose', args);
    if (perm.length !== x.shape.length || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
      throw new NativeKernelError(`native kernel Transpose: perm [${perm}] is not a permutation of the axes of [${x.shape}]`);
    }
    const shape = perm.map((p) => x.shape[p]);
    const o = wordOutput(backend, x.dtype, shape, 'Transpose output');
    addonOf(backend).ewTranspose(xv, o.view, i32(x.shape), i32(perm));
    return o.info;
  },
};

const sliceKernel: NativeKernel = {
  kernelName: 'Slice',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = wordValues(backend, x);
    if (!xv) return runCpuKernel('Slice', args);
    const [begin, sz] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number | number[], args.attrs.size as number | number[]);
    if (begin.some((b, i) => b < 0 || sz[i] < 0 || b + sz[i] > x.shape[i])) {
      throw new NativeKernelError(`native kernel Slice: begin [${begin}] size [${sz}] is outside [${x.shape}]`);
    }
    const o = wordOutput(backend, x.dtype, sz, 'Slice output');
    addonOf(backend).ewSlice(xv, o.view, i32(x.shape), i32(begin), i32(sz));
    return o.info;
  },
};

const concatKernel: NativeKernel = {
  kernelName: 'Concat',
  kernelFunc: (args) => {
    const { backend } = args;
    const inputs = Object.values(args.inputs) as tf.TensorInfo[];
    const dtype = inputs[0].dtype;
    const vals = inputs.map((t) => (t.dtype === dtype ? wordValues(backend, t) : undefined));
    if (vals.some((v) => !v)) return runCpuKernel('Concat', args);
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, inputs[0].shape)[0];
    const shapes = inputs.map((t) => t.shape);
    const rank = shapes[0].length;
    if (shapes.some((s) => s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i]))) {
      throw new NativeKernelError(`native kernel Concat: shapes ${shapes.map((s) => `[${s}]`).join(', ')} differ off axis ${axis}`);
    }
    const outShape = [...shapes[0]];
    outShape[axis] = shapes.reduce((n, s) => n + s[axis], 0);
    const o = wordOutput(backend, dtype, outShape, 'Concat output');
    if (numel(outShape) > 0) {
      addonOf(backend).ewConcat(vals as F32[], o.view, numel(outShape.slice(0, axis)), i32(shapes.map((s) => numel(s.slice(axis)))));
    }
    return o.info;
  },
};

const tileKernel: NativeKernel = {
  kernelName: 'Tile',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const reps = args.attrs.reps as number[];
    const xv = wordValues(backend, x);
    if (!xv || x.shape.length === 0) return runCpuKernel('Tile', args);
    if (reps.length !== x.shape.length || reps.some((r) => !Number.isInteger(r) || r < 0)) {
      throw new NativeKernelError(`native kernel Tile: reps [${reps}] do not fit shape [${x.shape}]`);
    }
    const shape = x.shape.map((d, i) => d * reps[i]);
    const o = wordOutput(backend, x.dtype, shape, 'Tile output');
    addonOf(backend).ewTile(xv, o.view, i32(x.shape), i32(reps));
    return o.info;
  },
};

const gatherKernel: NativeKernel = {
  kernelName: 'GatherV2',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const xv = wordValues(backend, x);
    const iv = backend.valuesOf(indices);
    if (!xv || indices.dtype !== 'int32' || !(iv instanceof Int32Array)) return runCpuKernel('GatherV2', args);
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const batchDims = (args.attrs.batchDims as number | undefined) ?? 0;
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x as tf.Tensor, indices as tf.Tensor, axis, batchDims);
    const o = wordOutput(backend, x.dtype, info.outputShape, 'GatherV2 output');
    const n = iv.length / Math.max(info.batchSize, 1);
    const bad = numel(info.outputShape) === 0 ? -1
      : addonOf(backend).ewGather(xv, iv, o.view, info.batchSize, info.outerSize, info.dimSize, info.sliceSize, n);
    if (bad >= 0) {
      backend.disposeIntermediateTensorInfo(o.info);
      throw new NativeKernelError(`native kernel GatherV2: index ${iv[bad]} (position ${bad}) is not in [0, ${info.dimSize - 1}] for x [${x.shape}] axis ${axis}, indices [${indices.shape}]`);
    }
    return o.info;
  },
};

const scatterNdKernel: NativeKernel = {
  kernelName: 'ScatterNd',
  kernelFunc: (args) => {
    const { backend } = args;
    const { indices, updates } = args.inputs as { indices: tf.TensorInfo; updates: tf.TensorInfo };
    const shape = args.attrs.shape as number[];
    const uv = floatValues(backend, updates);
    const iv = backend.valuesOf(indices);
    if (!uv || !(iv instanceof Int32Array)) return runCpuKernel('ScatterNd', args);
    const { sliceRank, numUpdates, sliceSize, strides, outputSize } = tf.backend_util.calculateShapes(updates as tf.Tensor, indices as tf.Tensor, shape);
    const out = backend.alloc(outputSize, 'ScatterNd output');
    if (outputSize > 0) {
      const bad = addonOf(backend).ewScatterNd(iv, uv, out, numUpdates, sliceRank, sliceSize, i32(strides), outputSize / sliceSize);
      if (bad >= 0) {
        backend.pool.release(out);
        throw new NativeKernelError(`native kernel ScatterNd: indices [${[...iv.subarray(bad * sliceRank, (bad + 1) * sliceRank)]}] of update ${bad} do not index into [${shape}] (indices [${indices.shape}], updates [${updates.shape}])`);
      }
    }
    return backend.out([...shape], out);
  },
};

const padKernel: NativeKernel = {
  kernelName: 'PadV2',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const paddings = args.attrs.paddings as [number, number][];
    const value = args.attrs.constantValue as number;
    const xv = floatValues(backend, x);
    if (!xv || x.shape.length === 0) return runCpuKernel('PadV2', args);
    if (paddings.length !== x.shape.length || paddings.some(([b, a]) => !(b >= 0 && a >= 0))) {
      throw new NativeKernelError(`native kernel PadV2: paddings ${JSON.stringify(paddings)} do not fit shape [${x.shape}]`);
    }
    const shape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
    const out = backend.alloc(numel(shape), 'PadV2 output');
    addonOf(backend).ewPad(xv, out, i32(x.shape), i32(paddings.map((p) => p[0])), i32(paddings.map((p) => p[1])), value);
    return backend.out(shape, out);
  },
};

const castKernel: NativeKernel = {
  kernelName: 'Cast',
  kernelFunc: (args) => {
    const { backend } = args;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const dtype = args.attrs.dtype as tf.DataType;
    const v = backend.valuesOf(x);
    const ew = addonOf(backend);
    const n = numel(x.shape);
    if (dtype === 'float32' && x.dtype === 'int32' && v instanceof Int32Array) {
      const out = backend.alloc(n, 'Cast output');
      ew.ewCast(0, v, out);
      return backend.out([...x.shape], out);
    }
    if (dtype === 'float32' && x.dtype === 'bool' && v instanceof Uint8Array) {
      const out = backend.alloc(n, 'Cast output');
      ew.ewCast(1, v, out);
      return backend.out([...x.shape], out);
    }
    if (x.dtype === 'float32' && v instanceof Float32Array && (dtype === 'int32' || dtype === 'bool')) {
      const out = dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
      ew.ewCast(dtype === 'int32' ? 2 : 3, v, out);
      return backend.makeTensorInfo([...x.shape], dtype, out);
    }
    return runCpuKernel('Cast', args);
  },
};

export const elementwiseKernels: NativeKernel[] = [
  ...(Object.keys(BINARY) as (keyof typeof BINARY)[]).map(binaryKernel),
  ...(Object.keys(UNARY) as (keyof typeof UNARY)[]).map(unaryKernel),
  ...(Object.keys(REDUCE) as (keyof typeof REDUCE)[]).map(reduceKernel),
  softmaxKernel, transposeKernel, sliceKernel, concatKernel, tileKernel, gatherKernel, scatterNdKernel, padKernel, castKernel,
];
