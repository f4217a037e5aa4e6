/**
 * A JSON Lines file as blocks of whole lines, read with one reused-size buffer, so preparing a file
 * holds a few blocks in memory whatever its size. A line longer than data.max_record_bytes is never
 * held whole: it is counted to its newline and reported by length (as readRecords reports it). The
 * bytes are hashed as they pass (the header's data_sha256).
 * Each block is read straight after the previous block's unfinished line in a buffer of its own, and
 * yielded as a view of it (`owned`: the consumer may transfer that whole buffer to a thread), so a
 * byte is copied once at most (the unfinished line) instead of twice per block (Buffer.concat, then a
 * copy to own the bytes: 8% of the main thread's time while preparing, notes/s6-tok.md).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { InputError } from '../errors.ts';

export type LineBlock =
  /**
   * Whole lines (the last may lack its newline at end of file), the first numbered `firstLine`.
   * `bytes.buffer` belongs to the consumer alone (it may be larger than the view).
   */
  | { kind: 'lines'; bytes: Uint8Array; firstLine: number; owned: true }
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
    // The unfinished last line of what was read so far (never longer than maxRecordBytes + 1).
    let pending = new Uint8Array(0);
    let line = 1;
    let total = 0;
    // While skipping an oversize line: its bytes so far, and whether the last one seen was \r.
    let skipping: { bytes: number; lastCr: boolean } | undefined;
    for (;;) {
      const buf = new Uint8Array(pending.length + o.blockBytes);
      buf.set(pending);
      const { bytesRead } = await fh.read(buf, pending.length, o.blockBytes, null);
      if (bytesRead === 0) break;
      const fresh = buf.subarray(pending.length, pending.length + bytesRead);
      hash.update(fresh);
      total += bytesRead;
      o.onBytes?.(total);
      let from = 0; // where this block's unconsumed bytes start in buf
      if (skipping) {
        // pending is empty while skipping
        const nl = fresh.indexOf(0x0a);
        if (nl < 0) {
          skipping = { bytes: skipping.bytes + fresh.length, lastCr: fresh[fresh.length - 1] === 0x0d };
          continue;
        }
        const cr = nl > 0 ? fresh[nl - 1] === 0x0d : skipping.lastCr;
        yield { kind: 'oversize', line, bytes: skipping.bytes + nl - (cr ? 1 : 0) };
        line++;
        skipping = undefined;
        from = nl + 1;
      }
      const data = buf.subarray(from, pending.length + bytesRead);
      const last = data.lastIndexOf(0x0a);
      if (last < 0) {
        pending = data;
        // +1: a line of exactly maxRecordBytes may still be followed by its \r.
        if (pending.length > o.maxRecordBytes + 1) {
          skipping = { bytes: pending.length, lastCr: pending[pending.length - 1] === 0x0d };
          pending = new Uint8Array(0);
        }
        continue;
      }
      const bytes = data.subarray(0, last + 1);
      pending = data.slice(last + 1); // its own copy: `buf` goes to the consumer
      const first = line;
      line += countNewlines(bytes); // before the yield: the consumer transfers the bytes to a thread
      yield { kind: 'lines', bytes, firstLine: first, owned: true };
    }
    if (skipping) yield { kind: 'oversize', line, bytes: skipping.bytes - (skipping.lastCr ? 1 : 0) };
    else if (pending.length) yield { kind: 'lines', bytes: pending, firstLine: line, owned: true };
  } finally {
    await fh.close();
  }
}

function countNewlines(b: Uint8Array): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}
