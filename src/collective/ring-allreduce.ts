/**
 * Ring all-reduce over an abstract left/right peer: no transport, no gRPC. After
 * facebookincubator/gloo `allreduce_ring.h` and Baidu's ring all-reduce (Gibiansky 2017):
 *
 *   buffer of L float32 values, N ranks, cut into N chunks (chunks.ts), chunk c ~ L/N values.
 *   1. reduce-scatter, rounds 0..N-2: send chunk (rank - r) right, receive chunk (rank - r - 1) from
 *      the left and add it into our copy. After N-1 rounds rank owns the full sum of chunk rank+1.
 *   2. all-gather, rounds N-1..2N-3: send the owned chunk around the ring; every receiver *copies*
 *      what it receives, so every rank ends with the owner's bytes (bit-identical replicas).
 *   Each rank sends 2(N-1)/N * L values in total, which is optimal for a ring (hence NCCL's "bus
 *   bandwidth" = 2(N-1)/N * S / t).
 *
 * Pipelining. Chunks are split into messages (parts) of at most maxElementsPerMessage values. The
 * chunk sent in round s is the chunk received in round s-1 (RingSchedule), so part p of round s can
 * leave as soon as part p of round s-1 has arrived and been added: a send loop and a receive loop run
 * concurrently and meet only at that dependency. The receive loop never waits on sending, so the ring
 * cannot deadlock however little buffering the transport has.
 *
 * Lossy codecs. The owner rounds its fully reduced chunk through the codec before sending it in the
 * first all-gather round (codec.roundTrip), so it keeps exactly the values the others decode.
 *
 * Exact tail (`exactTail` k > 0, lossy codecs only). The last k values (a training step's loss sum,
 * token count and stop votes after its gradient) must come out as the fp32 codec sums them: a bf16
 * count above 256 is not exact. RingSchedule cuts the messages at L - k, so the tail travels in
 * messages of its own, and every message at or after L - k is sent, expected and reduced in fp32.
 * Each tail value then sees the same float32 adds in the same order as under the fp32 codec (the
 * order depends only on its chunk), so its bits are the fp32 codec's; values before L - k travel
 * exactly as with k = 0 (bf16 rounds per value: the same bits; fp16 scales per message, so only the
 * message the tail was cut from gets its own scale). Sender and receiver derive the per-message codec
 * from the same arguments, and expectHeader refuses any other: a peer cannot pick fp32 for a message.
 * Cost: 2 bytes more per tail value per send and one more message in the last chunk's rounds.
 */
import { mod, partCount, partRange, RingSchedule, type Range } from './chunks.ts';
import { fp32, type WireCodec } from './codecs.ts';
import { RingProtocolError } from './errors.ts';

/** Where a message belongs: collective `step`, `round` 0..2N-3, `chunk` 0..N-1, `part` in the chunk. */
export interface ChunkHeader {
  readonly step: number;
  readonly round: number;
  readonly chunk: number;
  readonly part: number;
}

export interface IncomingChunk extends ChunkHeader {
  readonly codec: WireCodec;
  /** Number of float values encoded in payload. */
  readonly elements: number;
  /** Encoded values; byteOffset is a multiple of 4; valid until the next receive(). */
  readonly payload: Uint8Array;
}

/**
 * The two neighbours of one rank, as the algorithm sees them. Implementations: grpc-peer.ts (real
 * sockets) and memory-peer.ts (tests). Contract: messages from the left arrive in the order the left
 * neighbour sent them; messages for other jobs, stale steps or other senders never reach receive().
 */
export interface RingPeer {
  /**
   * Encode `values` with `codec` and queue it for the right neighbour. Resolves once the values are
   * copied out (the caller may then overwrite them); waits while the transport is full (backpressure).
   */
  send(header: ChunkHeader, values: Float32Array, codec: WireCodec): Promise<void>;
  /** The next message of collective `step` from the left neighbour. */
  receive(step: number): Promise<IncomingChunk>;
  /** Fail every pending and later send/receive with `reason` (called on the first error). */
  abort(reason: Error): void;
  /**
   * Optional: the copy messages of the collective about to run, in the order they will arrive, with
   * where each one's values go. A transport that can reads those payloads straight into `dst` and hands
   * the message over with `payload` viewing `dst` (the algorithm then skips the copy); any other
   * message is received as usual. An empty list ends the plan (called when the collective ends).
   */
  expectCopies?(codec: WireCodec, copies: readonly ExpectedCopy[]): void;
}

/** A message the receiver will copy verbatim into `dst` (an fp32 all-gather part). */
export interface ExpectedCopy {
  readonly header: ChunkHeader;
  readonly dst: Float32Array;
}

export type ReduceOp = 'sum' | 'mean';

export interface RingAllReduceOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly step: number;
  readonly op: ReduceOp;
  readonly codec: WireCodec;
  readonly maxElementsPerMessage: number;
  /**
   * Where chunk c lies in `buf` (default: chunkRange's even cut of the whole buffer). A stripe of a
   * striped link (stripes.ts) reduces only its slice of every chunk; elements outside are not touched.
   */
  readonly chunkRanges?: readonly Range[];
  /** Updated with the round being received, so a timeout can say where the ring stopped. */
  readonly progress?: { round: number | null };
  /**
   * The last `exactTail` values of `buf` (default 0) are summed bit for bit as the fp32 codec sums them,
   * whatever `codec` (see the top of the file). Positions are absolute in `buf`, also for a stripe
   * (chunkRanges): the stripe whose slices hold them sends them in fp32. Every rank must pass the same k.
   */
  readonly exactTail?: number;
}

/** In-place all-reduce of `buf` across the ring; every rank ends with bit-identical contents. */
export async function ringAllReduce(peer: RingPeer, buf: Float32Array, opts: RingAllReduceOptions): Promise<void> {
  const { rank, worldSize: n, step, codec } = opts;
  const maxElements = opts.maxElementsPerMessage;
  const exactFrom = buf.length - exactTailOf(buf.length, codec, opts.exactTail);
  // The codec of message `r`: fp32 from exactFrom on (an empty message keeps the collective's codec).
  const codecOf = (r: Range): WireCodec => (r.start >= exactFrom && r.end > r.start ? fp32 : codec);
  if (n > 1) {
    const schedule = new RingSchedule(rank, n, buf.length, maxElements, opts.chunkRanges, exactFrom);
    const ready = new Countdown();
    // fp32 copies are verbatim: the transport may read them straight into place (no copy from a slot).
    // Safe however early they arrive: an all-gather part of chunk c exists only after this rank's own
    // reduce-scatter send of that part went round the ring, i.e. after its bytes left this buffer.
    const placing = placedCopies && codec.name === 'fp32' && peer.expectCopies !== undefined;
    if (placing) peer.expectCopies!(codec, expectedCopies(schedule, buf, step));

    // Receive loop: rounds in order, parts in order; add (reduce-scatter) or copy (all-gather).
    const receiveAll = async (): Promise<void> => {
      for (let round = 0; round < schedule.rounds; round++) {
        if (opts.progress) opts.progress.round = round;
        const chunk = schedule.recvChunk(round);
        const parts = schedule.parts(chunk);
        for (let part = 0; part < parts.length; part++) {
          const msg = await peer.receive(step);
          const { start, end } = parts[part]!;
          const c = codecOf(parts[part]!);
          expectHeader(msg, { step, round, chunk, part }, end - start, c, mod(rank - 1, n));
          const dst = buf.subarray(start, end);
          if (schedule.isReduce(round)) c.accumulate(msg.payload, dst);
          else if (!isViewOf(msg.payload, dst)) c.decode(msg.payload, dst);
          ready.advance(); // message schedule.recvIndex(round, part) is now final for this round
        }
      }
    };

    // Send loop: part p of round s waits only for part p of round s-1 (same chunk, see chunks.ts).
    const sendAll = async (): Promise<void> => {
      for (let round = 0; round < schedule.rounds; round++) {
        const chunk = schedule.sendChunk(round);
        const parts = schedule.parts(chunk);
        for (let part = 0; part < parts.length; part++) {
          if (round > 0) await ready.reach(schedule.recvIndex(round - 1, part) + 1);
          const { start, end } = parts[part]!;
          const c = codecOf(parts[part]!);
          const values = buf.subarray(start, end);
          // First all-gather round: we own this fully reduced chunk; keep what the others will get.
          if (round === n - 1) c.roundTrip(values);
          await peer.send({ step, round, chunk, part }, values, c);
        }
      }
    };

    let failed = false;
    const fail = (err: unknown): never => {
      if (!failed) {
        failed = true;
        const reason = err instanceof Error ? err : new Error(String(err));
        ready.fail(reason);
        peer.abort(reason);
      }
      throw err;
    };
    try {
      await Promise.all([receiveAll().catch(fail), sendAll().catch(fail)]);
    } finally {
      if (placing) peer.expectCopies!(codec, []);
    }
  }
  if (opts.progress) opts.progress.round = null;
  if (opts.op === 'mean') {
    // Same arithmetic on bit-identical sums, so the means stay bit-identical too.
    for (const { start, end } of opts.chunkRanges ?? [{ start: 0, end: buf.length }]) {
      for (let i = start; i < end; i++) buf[i]! /= n;
    }
  }
}

export interface RingBroadcastOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly step: number;
  /** The rank whose buffer every rank ends with. */
  readonly root: number;
  /** An exact codec (fp32): a broadcast copies bits, it never rounds. */
  readonly codec: WireCodec;
  readonly maxElementsPerMessage: number;
  readonly progress?: { round: number | null };
}

/**
 * Broadcast of `buf` from `root`: every rank ends with root's bytes (NaN payloads and -0.0 included).
 * The all-gather half of the ring, for one chunk that is the whole buffer: root sends its parts right;
 * rank root+d (d = 1..N-1) receives each part from the left, copies it in and, unless its right
 * neighbour is root, forwards it. The chain root -> ... -> root-1 has no cycle, so receive-then-forward
 * cannot deadlock; parts pipeline down the chain. Not an all-reduce of zeros: x + 0 turns -0.0 into
 * +0.0, and re-forming a ring (docs/reliability.md) must hand parameters and optimizer state over exactly.
 * Headers: round 0, chunk `root`, part p of ceil(L / maxElementsPerMessage).
 */
export async function ringBroadcast(peer: RingPeer, buf: Float32Array, opts: RingBroadcastOptions): Promise<void> {
  const { rank, worldSize: n, step, root, codec, maxElementsPerMessage: maxElements } = opts;
  if (!(root >= 0 && root < n)) throw new RingProtocolError(`broadcast root ${root} is not a rank of ${n}`);
  if (n === 1) return;
  const whole = { start: 0, end: buf.length };
  const parts = partCount(whole, maxElements);
  const distance = mod(rank - root, n);
  const forwards = distance < n - 1;
  if (opts.progress) opts.progress.round = 0;
  try {
    for (let part = 0; part < parts; part++) {
      const { start, end } = partRange(whole, maxElements, part);
      const values = buf.subarray(start, end);
      if (distance > 0) {
        const msg = await peer.receive(step);
        expectHeader(msg, { step, round: 0, chunk: root, part }, end - start, codec, mod(rank - 1, n));
        codec.decode(msg.payload, values);
      }
      if (forwards) await peer.send({ step, round: 0, chunk: root, part }, values, codec);
    }
  } catch (err) {
    peer.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  } finally {
    if (opts.progress) opts.progress.round = null;
  }
}

let placedCopies = true;

/**
 * Turn the placed copies (RingPeer.expectCopies) off or on again for this process: for A/B
 * measurements (bench/allreduce.ts --placed off). Results do not change.
 */
export function usePlacedCopies(on: boolean): void {
  placedCopies = on;
}

/** Whether placed copies are on in this thread (a striped ring passes it on to its stripe threads). */
export function placedCopiesOn(): boolean {
  return placedCopies;
}

/** The all-gather parts this rank receives, in order, with their place in `buf`. */
function expectedCopies(schedule: RingSchedule, buf: Float32Array, step: number): ExpectedCopy[] {
  const copies: ExpectedCopy[] = [];
  for (let round = 0; round < schedule.rounds; round++) {
    if (schedule.isReduce(round)) continue;
    const chunk = schedule.recvChunk(round);
    schedule.parts(chunk).forEach(({ start, end }, part) => {
      if (end > start) copies.push({ header: { step, round, chunk, part }, dst: buf.subarray(start, end) });
    });
  }
  return copies;
}

/** The exact tail actually used: none under fp32 (every value is exact already, messages stay as they were). */
function exactTailOf(length: number, codec: WireCodec, exactTail = 0): number {
  if (!Number.isInteger(exactTail) || exactTail < 0 || exactTail > length) {
    throw new RangeError(`exactTail ${exactTail} is not an integer in [0, ${length}] (the buffer's length)`);
  }
  return codec.name === 'fp32' ? 0 : exactTail;
}

/**
 * Payload bytes one rank sends in an all-reduce of `length` values, averaged over the ranks: every value
 * travels 2(N-1) times around the ring, spread over N senders; the exact tail's values travel as fp32.
 * (fp16's 4-byte scale per message is left out.)
 */
export function allReduceBytesPerRank(length: number, worldSize: number, codec: WireCodec, exactTail = 0): number {
  const k = exactTailOf(length, codec, exactTail);
  return Math.round(((2 * (worldSize - 1)) / worldSize) * ((length - k) * codec.bytesPerElement + k * fp32.bytesPerElement));
}

/** True when `bytes` are exactly the memory of `values` (a payload already read into place). */
function isViewOf(bytes: Uint8Array, values: Float32Array): boolean {
  return bytes.buffer === values.buffer && bytes.byteOffset === values.byteOffset && bytes.byteLength === values.byteLength;
}

function expectHeader(msg: IncomingChunk, want: ChunkHeader, elements: number, codec: WireCodec, left: number): void {
  if (
    msg.step !== want.step ||
    msg.round !== want.round ||
    msg.chunk !== want.chunk ||
    msg.part !== want.part ||
    msg.elements !== elements ||
    msg.codec !== codec
  ) {
    throw new RingProtocolError(
      `rank ${left} sent step ${msg.step} round ${msg.round} chunk ${msg.chunk} part ${msg.part} ` +
        `(${msg.elements} ${msg.codec.name} values) but step ${want.step} round ${want.round} chunk ` +
        `${want.chunk} part ${want.part} (${elements} ${codec.name} values) was due: the ranks disagree ` +
        `on buffer length, codec, exactTail or step; every rank must call allReduce with the same arguments.`,
    );
  }
}

/** A monotone counter the send loop can wait on; fails all waiters once the collective fails. */
class Countdown {
  private count = 0;
  private target = 0;
  private waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private error: Error | null = null;

  advance(): void {
    this.count++;
    if (this.waiter && this.count >= this.target) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
  }

  reach(target: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.count >= target) return Promise.resolve();
    this.target = target;
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  fail(err: Error): void {
    this.error = err;
    this.waiter?.reject(err);
    this.waiter = null;
  }
}
