// Prints the linker flags for OpenBLAS, for binding.gyp. Prefers Debian's OpenMP build
// (libopenblas0-openmp): the engine's own kernels use OpenMP too, and with one OpenMP runtime the two
// share a thread pool instead of two pools spinning against each other. Measured on 2 cores, config
// B at 2 threads: 605 ms/step with the pthread build vs 347 ms with the OpenMP build (1 thread: 605).
// RINGTUNE_BLAS_DIR=<dir holding libopenblas.so.0> overrides; otherwise the default -lopenblas.
import { existsSync } from 'node:fs';

const candidates = [
  process.env.RINGTUNE_BLAS_DIR,
  '/usr/lib/x86_64-linux-gnu/openblas-openmp',
  '/usr/lib/aarch64-linux-gnu/openblas-openmp',
].filter(Boolean);
const dir = candidates.find((d) => existsSync(`${d}/libopenblas.so.0`));
console.log(dir ? `-L${dir} -Wl,-rpath,${dir} -l:libopenblas.so.0` : '-lopenblas');
