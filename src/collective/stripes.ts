/**
 * Striping one ring link over K connections (`connections` / cluster.ring_connections), each stripe an
 * ordinary ring on its own sockets and in its own thread (stripe-thread.ts), so K cores can move bytes.
 *
 * Layout. The buffer is cut into N chunks as always (chunks.ts chunkRange); chunk c is cut again into K
 * contiguous slices with the same rule, and stripe k runs the ring over slice k of every chunk, with
 * chunk ownership unchanged. Worked example, length 10, N = 2, K = 2: chunks [0, 5) and [5, 10);
 * stripe 0 reduces [0, 3) as chunk 0 and [5, 8) as chunk 1, stripe 1 [3, 5) and [8, 10).
 *
 * Why results stay bit-identical to K = 1: the additions an element sees depend only on which chunk it
 * is in (chunk c is summed starting at rank c, then c+1, ... around the ring, and rank c+N-1 owns it)
 * and on the codec, which rounds per element (bf16 encode, accumulate and the owner's round trip all
 * act on one value at a time). Striping keeps every element in its chunk, so every element sees the
 * same sequence of float32 operations in the same order; message boundaries change, values do not.
 * Stripes share no element, so they need no ordering between them.
 *
 * Addresses: stripe k of a rank listens on the rank's port + k (K consecutive ports), so the address
 * the coordinator passes around stays one host:port whatever K is.
 */
import { chunkRange, type Range } from './chunks.ts';

/** Largest `connections` a ring accepts: one thread per stripe; past the cores of any machine we run on. */
export const MAX_CONNECTIONS = 16;

/** Where chunk c of stripe `stripe` lies in a `length`-value buffer: slice `stripe` of chunk c, for each c. */
export function stripeChunkRanges(length: number, worldSize: number, stripes: number, stripe: number): Range[] {
  return Array.from({ length: worldSize }, (_, c) => {
    const chunk = chunkRange(length, worldSize, c);
    const slice = chunkRange(chunk.end - chunk.start, stripes, stripe);
    return { start: chunk.start + slice.start, end: chunk.start + slice.end };
  });
}

/** The part of the buffer stripe `stripe` carries in a broadcast (a copy: any cut keeps the bits). */
export function stripeRange(length: number, stripes: number, stripe: number): Range {
  return chunkRange(length, stripes, stripe);
}

/** Values of a stripe: what its message size is computed from (the same on every rank). */
export function rangesLength(ranges: readonly Range[]): number {
  return ranges.reduce((n, r) => n + r.end - r.start, 0);
}

/** host:port of stripe `stripe` of the rank at `address` (host:port of its stripe 0). */
export function stripeAddress(address: string, stripe: number): string {
  if (stripe === 0) return address;
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) throw new RangeError(`ring address ${JSON.stringify(address)} has no port`);
  return `${address.slice(0, colon + 1)}${port + stripe}`;
}
