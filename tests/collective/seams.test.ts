/**
 * The collective's dependency rule (src/collective/transport.ts): the neutral modules import no
 * transport; the h2 transport (h2-*.ts), the raw-h2 transport (raw-h2-*.ts) and the grpc-js transport
 * (grpc-js-*.ts, grpc-peer.ts, grpc-service.ts) import only neutral modules, never each other;
 * grpc-ring.ts alone composes them.
 * Read from the import lines of src/collective/*.ts (TypeScript's own import scanner: static and
 * type-only imports, re-exports, dynamic import()) and followed transitively, so a cross edge through
 * a third file fails too. A second check asks node which packages a module really loads.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import ts from 'typescript';

const DIR = fileURLToPath(new URL('../../src/collective/', import.meta.url));
const GRPC_JS = '@grpc/grpc-js';
const HTTP2 = 'node:http2';

type Side = 'h2' | 'raw-h2' | 'grpc-js' | 'composer' | 'neutral';

function sideOf(file: string): Side {
  if (file.startsWith('h2-')) return 'h2';
  if (file.startsWith('raw-h2-')) return 'raw-h2';
  if (/^grpc-(js-|peer|service)/.test(file)) return 'grpc-js';
  // The entry of a ring stripe thread holds a GrpcRing as the worker does; nothing imports it (a thread
  // loads it by URL), so it composes for its thread only (asserted below).
  if (file === 'grpc-ring.ts' || file === 'stripe-thread-main.ts') return 'composer';
  return 'neutral';
}

/** file -> what it imports: sibling file names ('wire.ts') and packages ('@grpc/grpc-js'). */
type Graph = ReadonlyMap<string, readonly string[]>;

function readGraph(): Graph {
  const graph = new Map<string, string[]>();
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.ts'))) {
    const scanned = ts.preProcessFile(readFileSync(DIR + file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
    graph.set(file, scanned.filter((s) => !s.startsWith('../')).map((s) => s.replace(/^\.\//, '')));
  }
  return graph;
}

/** Everything `file` reaches through sibling imports (not itself). */
function closure(graph: Graph, file: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(graph.get(file) ?? [])];
  while (todo.length > 0) {
    const next = todo.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    todo.push(...(graph.get(next) ?? []));
  }
  return seen;
}

/** Every broken rule, as "file reaches target (why)". */
function violations(graph: Graph): string[] {
  const out: string[] = [];
  for (const file of graph.keys()) {
    const side = sideOf(file);
    for (const target of closure(graph, file)) {
      const other = graph.has(target) ? sideOf(target) : null;
      if (target === 'grpc-ring.ts' && side !== 'composer') out.push(`${file} reaches ${target} (only grpc-ring.ts composes the transports)`);
      const transport = side === 'h2' || side === 'raw-h2' || side === 'grpc-js';
      if (transport && other !== null && other !== side && other !== 'neutral') out.push(`${file} reaches ${target} (${side} must not touch ${other})`);
      if ((side === 'h2' || side === 'raw-h2') && target === GRPC_JS) out.push(`${file} reaches ${target} (${side} must not touch grpc-js)`);
      if (side === 'raw-h2' && target === HTTP2) out.push(`${file} reaches ${target} (raw-h2 has its own HTTP/2)`);
      if (side === 'neutral' && (other === 'h2' || other === 'raw-h2' || other === 'grpc-js' || target === GRPC_JS || target === HTTP2)) {
        out.push(`${file} reaches ${target} (neutral modules import no transport)`);
      }
    }
  }
  return out;
}

test('src/collective keeps the transports apart: neutral <- h2, neutral <- grpc-js, both <- grpc-ring', () => {
  const graph = readGraph();
  // The files the rule is about exist and land on the side they should (a rename would otherwise hide them).
  const sides = Object.fromEntries([...graph.keys()].map((f) => [f, sideOf(f)]));
  for (const f of ['transport.ts', 'ring-protocol.ts', 'peer-state.ts', 'wire.ts', 'codecs.ts', 'ring-options.ts']) {
    assert.equal(sides[f], 'neutral', f);
  }
  for (const f of ['grpc-framing.ts']) assert.equal(sides[f], 'neutral', f);
  for (const f of ['h2-transport.ts', 'h2-peer.ts']) assert.equal(sides[f], 'h2', f);
  for (const f of ['raw-h2-transport.ts', 'raw-h2-peer.ts', 'raw-h2-connection.ts', 'raw-h2-stream.ts', 'raw-h2-frames.ts', 'raw-h2-hpack.ts']) assert.equal(sides[f], 'raw-h2', f);
  for (const f of ['grpc-js-transport.ts', 'grpc-peer.ts', 'grpc-service.ts']) assert.equal(sides[f], 'grpc-js', f);
  assert.ok(graph.get('grpc-js-transport.ts')!.includes(GRPC_JS), 'the scanner sees package imports');
  assert.equal(sides['stripe-thread-main.ts'], 'composer');
  for (const [file, imports] of graph) assert.ok(!imports.includes('stripe-thread-main.ts'), `${file} imports the stripe thread's entry`);
  assert.deepEqual(violations(graph), []);
});

test('the rule checker catches a cross edge, also through a neutral file', () => {
  const graph: Graph = new Map([
    ['h2-transport.ts', ['transport.ts']],
    ['transport.ts', ['grpc-peer.ts']],
    ['grpc-peer.ts', [GRPC_JS]],
    ['grpc-js-transport.ts', ['h2-peer.ts']],
    ['h2-peer.ts', []],
    ['raw-h2-peer.ts', ['h2-peer.ts', HTTP2]],
  ]);
  assert.deepEqual(violations(graph).sort(), [
    'grpc-js-transport.ts reaches h2-peer.ts (grpc-js must not touch h2)',
    `h2-transport.ts reaches ${GRPC_JS} (h2 must not touch grpc-js)`,
    'h2-transport.ts reaches grpc-peer.ts (h2 must not touch grpc-js)',
    'raw-h2-peer.ts reaches h2-peer.ts (raw-h2 must not touch h2)',
    `raw-h2-peer.ts reaches ${HTTP2} (raw-h2 has its own HTTP/2)`,
    `transport.ts reaches ${GRPC_JS} (neutral modules import no transport)`,
    'transport.ts reaches grpc-peer.ts (neutral modules import no transport)',
  ]);
});

test('loading the h2 or raw-h2 transport or the neutral modules does not load @grpc/grpc-js (loading grpc-js-transport.ts does)', () => {
  const modules = ['h2-transport.ts', 'raw-h2-transport.ts', 'transport.ts', 'ring-protocol.ts', 'peer-state.ts', 'ring-options.ts', 'grpc-js-transport.ts'];
  // @grpc/grpc-js is CommonJS, so once imported it is in the shared require cache.
  const script = `
    const { createRequire } = await import('node:module');
    const cache = createRequire(import.meta.url).cache;
    const loaded = {};
    for (const m of ${JSON.stringify(modules)}) {
      await import(${JSON.stringify(DIR)} + m);
      loaded[m] = Object.keys(cache).some((k) => k.includes('/@grpc/grpc-js/'));
    }
    console.log(JSON.stringify(loaded));`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const loaded = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, boolean>;
  assert.deepEqual(loaded, Object.fromEntries(modules.map((m) => [m, m === 'grpc-js-transport.ts'])));
});
