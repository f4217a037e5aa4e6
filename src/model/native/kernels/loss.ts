/** Native kernels of the loss family (native/src/loss.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const lossKernels: NativeKernel[] = [];
