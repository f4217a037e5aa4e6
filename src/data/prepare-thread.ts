/**
 * Entry of a preparation worker thread (booted through src/worker/thread-boot.mjs, which registers
 * tsx): loads the tokenizer once, then turns each posted block into examples (prepare-chunk.ts) and
 * posts them back with their buffers transferred, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer, type TokenizerEngine } from '../model/tokenizer.ts';
import { ChunkBuilder, type ChunkInput, type ChunkSpec } from './prepare-chunk.ts';

const { modelDir, spec, engine } = workerData as { modelDir: string; spec: ChunkSpec; engine: TokenizerEngine };
const builder = new ChunkBuilder(spec, await Tokenizer.fromDir(modelDir, { engine }));
const port = parentPort!;
port.on('message', (m: { id: number; file: string; input: ChunkInput }) => {
  try {
    const out = builder.build(m.file, m.input);
    port.postMessage({ id: m.id, out }, [out.lines, out.lengths, out.labels, out.tokens, out.mask].map((a) => a.buffer as ArrayBuffer));
  } catch (err) {
    port.postMessage({ id: m.id, error: { name: (err as Error).name, message: (err as Error).message } });
  }
});
port.postMessage({ ready: true });
