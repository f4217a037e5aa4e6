/** Native kernels of the attention family (native/src/attention.cc). Filled in by its owner. */
import type { NativeKernel } from '../backend.ts';

export const attentionKernels: NativeKernel[] = [];
