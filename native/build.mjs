// Builds the native engine (native/build/Release/ringtune_native.node) at `npm ci` (the root package's
// postinstall; npm runs the root's own scripts whatever `allowScripts` says, that field only covers
// dependencies). Never fails the install: where a compiler, Node's headers or OpenBLAS are missing, the
// backend is skipped, the reason is written to native/build/skipped.txt and logged here, and again at
// start-up (src/model/native/addon.ts reads it; the backend chain then moves on to wasm).
//
// Environment:
//   RINGTUNE_NATIVE=0                   skip on purpose
//   RINGTUNE_NATIVE_BLAS_HEADER=<path>  the cblas.h to require instead of searching the Debian paths
//                                       (a non-standard OpenBLAS; tests point it at a missing file to
//                                       take the "no OpenBLAS" path on a machine that has it)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const skippedFile = join(here, 'build', 'skipped.txt');
const addonFile = join(here, 'build', 'Release', 'ringtune_native.node');
const require = createRequire(import.meta.url);

function skip(reason) {
  console.warn(`[ringtune] native engine not built: ${reason}`);
  try {
    mkdirSync(join(here, 'build'), { recursive: true });
    // A stale addon from an earlier build would still load; the skip must mean "not used".
    rmSync(addonFile, { force: true });
    writeFileSync(skippedFile, reason + '\n');
  } catch (err) {
    console.warn(`[ringtune] cannot record the skip in ${skippedFile}: ${err?.message ?? err}`);
  }
  process.exit(0);
}

function build() {
  if (process.env.RINGTUNE_NATIVE === '0') skip('RINGTUNE_NATIVE=0');
  // binding.gyp compiles with -march=x86-64-v3: on an older x86 CPU the addon would die of SIGILL at run time.
  if (arch() === 'x64' && existsSync('/proc/cpuinfo')) {
    const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
    const missing = ['avx2', 'fma', 'bmi2'].filter((f) => !flags.includes(f));
    if (flags.length && missing.length) skip(`this CPU lacks ${missing.join(', ')} (the engine is compiled for x86-64-v3)`);
  }
  const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (!has('g++') || !has('make')) skip('g++ and make are needed (Debian: apt-get install -y g++ make)');
  if (!has('python3')) skip('python3 is needed by node-gyp (Debian: apt-get install -y python3)');
  const headerOverride = process.env.RINGTUNE_NATIVE_BLAS_HEADER;
  const blasHeaders = headerOverride ? [headerOverride] : ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h',
    '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h'];
  if (!blasHeaders.some((p) => existsSync(p))) {
    skip(`OpenBLAS headers not found${headerOverride ? ` (RINGTUNE_NATIVE_BLAS_HEADER=${headerOverride})` : ''} (Debian: apt-get install -y libopenblas-dev)`);
  }

  // node-gyp: the one npm runs scripts with, else npm's bundled copy, else a local install.
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js')); } catch { /* not installed locally */ }
  const gyp = candidates.find((p) => p && existsSync(p));
  if (!gyp) skip('node-gyp not found (it ships with npm)');
  try { require.resolve('node-addon-api'); } catch { skip('node-addon-api is not installed (run `npm ci`)'); }

  // Build against the headers of the running Node (no download: the machines have no internet).
  const nodedir = process.env.npm_config_nodedir ||
    [join(dirname(process.execPath), '..')].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
  if (!nodedir) skip(`Node's headers not found next to ${process.execPath} (install the nodejs headers or set npm_config_nodedir)`);

  rmSync(skippedFile, { force: true });
  const started = Date.now();
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=max'], { cwd: here, encoding: 'utf8' });
  if (r.status !== 0) {
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error|ERR!/.test(l)).slice(0, 8).join('\n');
    skip(`node-gyp rebuild failed:\n${lines || r.error?.message || `exit ${r.status}`}`);
  }
  console.log(`[ringtune] native engine built in ${((Date.now() - started) / 1000).toFixed(1)} s (${addonFile})`);
}

try {
  build();
} catch (err) {
  // Whatever went wrong, the install goes on without the native engine.
  skip(`build script error: ${err?.message ?? err}`);
}
