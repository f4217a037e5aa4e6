// The image build's last check: the engines an image promises must load in it, or the build fails.
// Without it a failed libtensorflow download (tfjs-node's install script) or a missing OpenBLAS
// ships an image that silently trains on wasm. Run from the app directory:
//   node deploy/docker/check-engines.mjs native tensorflow          (CPU image)
//   node deploy/docker/check-engines.mjs native tensorflow-gpu      (GPU image)
//   native          ringtune's addon (native/build/Release/ringtune_native.node) and its OpenBLAS
//   tensorflow      @tensorflow/tfjs-node: its binding (tfjs_binding.node) and libtensorflow
//   tensorflow-gpu  @tensorflow/tfjs-node-gpu the same way, and the CUDA 11 / cuDNN 8 libraries its
//                   libtensorflow 2.9.1 opens at run time (libcuda.so.1 comes from the node's driver)
// Exit 0 when all load, else 1 with one line per engine that does not.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.cwd(), 'package.json'));
const CUDA_LIBS = ['libcudart.so.11.0', 'libcublas.so.11', 'libcublasLt.so.11', 'libcufft.so.10', 'libcurand.so.10', 'libcusolver.so.11', 'libcusparse.so.11', 'libcudnn.so.8'];

function tfjsNode(pkg) {
  const tf = require(pkg);
  if (tf.getBackend() !== 'tensorflow') throw new Error(`loaded, but its backend is ${tf.getBackend()}, not tensorflow`);
  return `${pkg} ${tf.version['tfjs-node']}, libtensorflow ${tf.backend().binding?.TF_Version ?? '(version unknown)'}`;
}

const CHECKS = {
  native: () => {
    const addon = require(join(process.cwd(), 'native/build/Release/ringtune_native.node'));
    return `ringtune native addon (${Object.keys(addon).length} exports)`;
  },
  tensorflow: () => tfjsNode('@tensorflow/tfjs-node'),
  'tensorflow-gpu': () => {
    const cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
    const missing = CUDA_LIBS.filter((lib) => !cache.includes(`${lib} `));
    if (missing.length) throw new Error(`the CUDA base image lacks ${missing.join(', ')} (libtensorflow 2.9.1 needs CUDA 11 and cuDNN 8)`);
    return tfjsNode('@tensorflow/tfjs-node-gpu');
  },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((e) => !(e in CHECKS));
if (wanted.length === 0 || unknown.length) {
  console.error(`usage: check-engines.mjs ${Object.keys(CHECKS).join('|')} ...${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}`);
  process.exit(2);
}
let failed = 0;
for (const engine of wanted) {
  try {
    console.log(`ok   ${engine}: ${CHECKS[engine]()}`);
  } catch (err) {
    failed++;
    console.error(`FAIL ${engine}: ${String(err.message).split('\n')[0]}`);
  }
}
process.exit(failed ? 1 : 0);
