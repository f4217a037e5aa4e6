// Builds the native engine (native/build/Release/ringtune_native.node) at `npm ci`.
// Never fails the install: where a compiler, Node's headers or OpenBLAS are missing, the backend is
// skipped and the reason is logged here and again at start-up (src/model/native/addon.ts reads
// native/build/skipped.txt). Set RINGTUNE_NATIVE=0 to skip on purpose.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const skippedFile = join(here, 'build', 'skipped.txt');
const require = createRequire(import.meta.url);

function skip(reason) {
  mkdirSync(join(here, 'build'), { recursive: true });
  writeFileSync(skippedFile, reason + '\n');
  console.warn(`[ringtune] native engine not built: ${reason}`);
  process.exit(0);
}

if (process.env.RINGTUNE_NATIVE === '0') skip('RINGTUNE_NATIVE=0');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
if (!has('g++') || !has('make')) skip('g++ and make are needed (Debian: apt-get install -y g++ make)');
if (!has('python3')) skip('python3 is needed by node-gyp (Debian: apt-get install -y python3)');
const blasHeader = ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h',
  '/usr/include/openblas/cblas.h'].find((p) => existsSync(p));
if (!blasHeader) skip('OpenBLAS headers not found (Debian: apt-get install -y libopenblas-dev)');

// node-gyp: the one npm runs scripts with, else npm's bundled copy, else a local install.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
];
try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js')); } catch { /* not installed locally */ }
const gyp = candidates.find((p) => p && existsSync(p));
if (!gyp) skip('node-gyp not found (it ships with npm)');

// Build against the headers of the running Node (no download: the machines have no internet).
const nodedir = process.env.npm_config_nodedir ||
  [join(dirname(process.execPath), '..')].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
if (!nodedir) skip(`Node's headers not found next to ${process.execPath} (install the nodejs headers or set npm_config_nodedir)`);

rmSync(skippedFile, { force: true });
const started = Date.now();
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=max'], { cwd: here, encoding: 'utf8' });
if (r.status !== 0) {
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error|ERR!/.test(l)).slice(0, 8).join('\n');
  skip(`node-gyp rebuild failed:\n${lines}`);
}
console.log(`[ringtune] native engine built in ${((Date.now() - started) / 1000).toFixed(1)} s (${join(here, 'build', 'Release', 'ringtune_native.node')})`);
