/** Native kernels of the optim family (native/src/optim.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const optimKernels: NativeKernel[] = [];
