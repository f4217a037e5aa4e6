/**
 * A JSON Lines file as blocks of whole lines, read with one reused-size buffer, so preparing a file
 * holds a few blocks in memory whatever its size. A line longer than data.max_record_bytes is never
 * held whole: it is counted to its newline and reported by length (as readRecords reports it). The
 * bytes are hashed as they pass (the header's data_sha256).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { InputError } from '../errors.ts';

export type LineBlock =
  /** Whole lines (the last may lack its newline at end of file), the first numbered `firstLine`. */
  | { kind: 'lines'; bytes: Uint8Array; firstLine: number }
  /** Line `line` has `bytes` bytes (without its line ending), more than maxRecordBytes. */
  | { kind: 'oversize'; line: number; bytes: number };

export interface BlockOptions {
  blockBytes: number;
  maxRecordBytes: number;
  /** Bytes read so far (progress). */
  onBytes?: (total: number) => void;
}

export async function* lineBlocks(file: string, o: BlockOptions, hash = createHash('sha256')): AsyncGenerator<LineBlock> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    throw new InputError(`${file}: cannot read the dataset file; check data.train / data.eval in the job spec`);
  }
  try {
    let pending: Buffer = Buffer.alloc(0);
    let line = 1;
    let total = 0;
    // While skipping an oversize line: its bytes so far, and whether the last one seen was \r.
    let skipping: { bytes: number; lastCr: boolean } | undefined;
    for (;;) {
      const chunk = Buffer.allocUnsafe(o.blockBytes);
      const { bytesRead } = await fh.read(chunk, 0, o.blockBytes, null);
      if (bytesRead === 0) break;
      let data = chunk.subarray(0, bytesRead);
      hash.update(data);
      total += bytesRead;
      o.onBytes?.(total);
      if (skipping) {
        const nl = data.indexOf(0x0a);
        if (nl < 0) {
          skipping = { bytes: skipping.bytes + data.length, lastCr: data[data.length - 1] === 0x0d };
          continue;
        }
        const cr = nl > 0 ? data[nl - 1] === 0x0d : skipping.lastCr;
        yield { kind: 'oversize', line, bytes: skipping.bytes + nl - (cr ? 1 : 0) };
        line++;
        skipping = undefined;
        data = data.subarray(nl + 1);
      }
      data = pending.length ? Buffer.concat([pending, data]) : data;
      const last = data.lastIndexOf(0x0a);
      if (last < 0) {
        pending = data;
        // +1: a line of exactly maxRecordBytes may still be followed by its \r.
        if (pending.length > o.maxRecordBytes + 1) {
          skipping = { bytes: pending.length, lastCr: pending[pending.length - 1] === 0x0d };
          pending = Buffer.alloc(0);
        }
        continue;
      }
      const bytes = new Uint8Array(data.subarray(0, last + 1)); // its own ArrayBuffer: transferred to a thread
      pending = Buffer.from(data.subarray(last + 1));
      const first = line;
      line += countNewlines(bytes); // before the yield: the consumer transfers the bytes to a thread
      yield { kind: 'lines', bytes, firstLine: first };
    }
    if (skipping) yield { kind: 'oversize', line, bytes: skipping.bytes - (skipping.lastCr ? 1 : 0) };
    else if (pending.length) yield { kind: 'lines', bytes: new Uint8Array(pending), firstLine: line };
  } finally {
    await fh.close();
  }
}

function countNewlines(b: Uint8Array): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}
