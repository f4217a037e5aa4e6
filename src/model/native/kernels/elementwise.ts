/** Native kernels of the elementwise family (native/src/elementwise.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const elementwiseKernels: NativeKernel[] = [];
