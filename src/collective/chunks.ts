/**
 * How a buffer of `length` float32 elements is cut for the ring: N chunks (one per rank) whose
 * lengths differ by at most one, each split into messages ("parts") of at most `maxElements`.
 *
 * Worked example, length 7, N = 3: base = 2, extra = 1 -> chunk 0 = [0, 3), 1 = [3, 5), 2 = [5, 7).
 * Every chunk has at least one part, even an empty one (length < N, or length 0): the ring then still
 * exchanges one (empty) message per round, so an all-reduce of nothing is a real barrier and both
 * neighbours agree on the message sequence without special cases.
 */

export interface Range {
  /** First element (inclusive). */
  readonly start: number;
  /** One past the last element. */
  readonly end: number;
}

/** Element range of chunk `chunk` of a `length`-element buffer cut into `worldSize` chunks. */
export function chunkRange(length: number, worldSize: number, chunk: number): Range {
  const base = Math.floor(length / worldSize);
  const extra = length % worldSize; // the first `extra` chunks get one more element
  const start = chunk * base + Math.min(chunk, extra);
  return { start, end: start + base + (chunk < extra ? 1 : 0) };
}

/** Number of messages chunk `range` is sent in: ceil(len / maxElements), at least 1. */
export function partCount(range: Range, maxElements: number): number {
  return Math.max(1, Math.ceil((range.end - range.start) / maxElements));
}

/** Element range of message `part` of chunk `range`. */
export function partRange(range: Range, maxElements: number, part: number): Range {
  const start = Math.min(range.start + part * maxElements, range.end);
  return { start, end: Math.min(start + maxElements, range.end) };
}

/** The message ranges of chunk `range`: partRange's cut, done on each side of `cut` when it lies inside. */
function messageRanges(range: Range, maxElements: number, cut: number): Range[] {
  const pieces = range.start < cut && cut < range.end ? [{ start: range.start, end: cut }, { start: cut, end: range.end }] : [range];
  return pieces.flatMap((p) => Array.from({ length: partCount(p, maxElements) }, (_, k) => partRange(p, maxElements, k)));
}

/** Euclidean modulo: ((a % n) + n) % n, for ring arithmetic on ranks and chunks. */
export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/**
 * The ring schedule for rank `rank` of `worldSize`: 2(N-1) rounds. Round s < N-1 is reduce-scatter
 * round s, round s >= N-1 is all-gather round s-(N-1). Follows gloo's allreduce_ring.h:
 *   reduce-scatter round r: send chunk (rank - r), receive chunk (rank - r - 1) and add it in;
 *     after N-1 rounds rank owns the full sum of chunk (rank + 1).
 *   all-gather round r:     send chunk (rank + 1 - r), receive chunk (rank - r) and copy it.
 * The chunk sent in round s is always the chunk received in round s-1: the ring is one pipeline,
 * which is what lets message p of round s leave as soon as message p of round s-1 has arrived.
 *
 * Exact tail (`exactFrom` < length): no message straddles position exactFrom. A chunk holding it is cut
 * there first and each side into parts as above, so the values from exactFrom on travel in messages of
 * their own (ring-allreduce.ts sends those in fp32). Worked example, length 10, N = 2, maxElements 4,
 * exactFrom 7: chunk 1 = [5, 10) -> [5, 7) and [7, 10), parts [5, 7), [7, 10) instead of [5, 9), [9, 10).
 */
export class RingSchedule {
  readonly rounds: number;
  /** Message index (in receive order) at which each round starts; the last entry is the total. */
  private readonly roundStart: number[];
  private readonly chunkRanges: Range[];
  /** The message ranges of each chunk, in order (partRange's cut, split at exactFrom). */
  private readonly chunkParts: Range[][];

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    readonly length: number,
    readonly maxElements: number,
    /** Where each chunk lies in the buffer, when not chunkRange()'s cut (a stripe's slices, stripes.ts). */
    ranges?: readonly Range[],
    /** Absolute position no message straddles (default: length, no cut). */
    readonly exactFrom: number = length,
  ) {
    if (!Number.isInteger(maxElements) || maxElements < 1) throw new RangeError(`maxElements ${maxElements} < 1`);
    if (ranges && ranges.length !== worldSize) throw new RangeError(`${ranges.length} chunk ranges for ${worldSize} ranks`);
    if (!Number.isInteger(exactFrom) || exactFrom < 0 || exactFrom > length) throw new RangeError(`exactFrom ${exactFrom} outside [0, ${length}]`);
    this.rounds = 2 * (worldSize - 1);
    this.chunkRanges = ranges ? [...ranges] : Array.from({ length: worldSize }, (_, c) => chunkRange(length, worldSize, c));
    this.chunkParts = this.chunkRanges.map((r) => messageRanges(r, maxElements, exactFrom));
    this.roundStart = [0];
    for (let s = 0; s < this.rounds; s++) {
      this.roundStart.push(this.roundStart[s]! + this.chunkParts[this.recvChunk(s)]!.length);
    }
  }

  /** The messages chunk `chunk` travels in: their element ranges, in send (and receive) order. */
  parts(chunk: number): readonly Range[] {
    return this.chunkParts[chunk]!;
  }

  /** True for reduce-scatter rounds (received data is added), false for all-gather (copied). */
  isReduce(round: number): boolean {
    return round < this.worldSize - 1;
  }

  /** Chunk this rank sends in `round`. */
  sendChunk(round: number): number {
    const n = this.worldSize;
    return this.isReduce(round) ? mod(this.rank - round, n) : mod(this.rank + 1 - (round - (n - 1)), n);
  }

  /** Chunk this rank receives in `round` (== sendChunk(round + 1)). */
  recvChunk(round: number): number {
    const n = this.worldSize;
    return this.isReduce(round) ? mod(this.rank - round - 1, n) : mod(this.rank - (round - (n - 1)), n);
  }

  range(chunk: number): Range {
    return this.chunkRanges[chunk]!;
  }

  sendRange(round: number): Range {
    return this.chunkRanges[this.sendChunk(round)]!;
  }

  recvRange(round: number): Range {
    return this.chunkRanges[this.recvChunk(round)]!;
  }

  /** Receive-order index of message `part` of round `round`. */
  recvIndex(round: number, part: number): number {
    return this.roundStart[round]! + part;
  }

  /** Total number of messages received (and sent) in one collective. */
  get totalMessages(): number {
    return this.roundStart[this.rounds]!;
  }
}
