/** Native kernels of the norms family (native/src/norms.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const normsKernels: NativeKernel[] = [];
