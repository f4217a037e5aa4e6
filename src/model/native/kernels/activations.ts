/** Native kernels of the activations family (native/src/activations.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const activationsKernels: NativeKernel[] = [];
