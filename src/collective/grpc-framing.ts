/**
 * gRPC's message framing over any HTTP/2 implementation (the h2 and raw-h2 transports share it):
 * the 5-byte length prefix, an incremental reader that copies message bytes straight into reused
 * receive slots, and grpc-message's percent-encoding. No transport in here.
 */
import type { WireCodec } from './codecs.ts';
import { RingProtocolError } from './errors.ts';
import type { ChunkEncoder, ChunkFields } from './wire.ts';

/** Writes the gRPC length prefix (uncompressed flag + big-endian length) into buf[at, at + 5). */
export function writeGrpcPrefix(buf: Uint8Array, at: number, length: number): void {
  buf[at] = 0;
  buf[at + 1] = length >>> 24;
  buf[at + 2] = (length >>> 16) & 255;
  buf[at + 3] = (length >>> 8) & 255;
  buf[at + 4] = length & 255;
}

/**
 * A RingChunk encoded into `buf` after 8 bytes of headroom, with its gRPC prefix written right in
 * front of wherever the encoder started: one contiguous framed message, no copy.
 */
export function frameChunk(encoder: ChunkEncoder, buf: Uint8Array, fields: Omit<ChunkFields, 'jobId'>, values: Float32Array | null, codec: WireCodec | null): Uint8Array {
  const msg = encoder.encode(buf.subarray(8), fields, values, codec);
  const at = msg.byteOffset - buf.byteOffset - 5;
  writeGrpcPrefix(buf, at, msg.length);
  return buf.subarray(at, at + 5 + msg.length);
}

export interface Slot {
  readonly bytes: Uint8Array;
}

/** Where one expected message's payload goes: after exactly `head` (its RingChunk bytes up to the payload), into `dst`. */
export interface Placement {
  readonly head: Uint8Array;
  readonly dst: Uint8Array;
}

/**
 * Decides, message by message, whether a payload is read straight into its final place instead of a
 * slot (slot-inbox.ts expectCopies: the all-gather copies of an fp32 collective land in the gradient).
 */
export interface MessagePlacer {
  /** A message of `bodyLength` bytes starts: the placement it would take if its header matches, or null. */
  candidate(bodyLength: number): Placement | null;
  /** Its first head.length bytes equal `p.head`: the payload is being placed (the placer moves on). */
  taken(p: Placement): void;
  /** A placed message was cut off by abandonPlacement(): nothing is delivered; its slot is free again. */
  dropped(slot: Slot): void;
}

/**
 * Incremental parser of gRPC length-prefixed messages from a byte stream delivered in arbitrary
 * chunks. Message bytes are copied into slots taken from `acquire` (null = none free: the reader
 * stops, keeps the rest of the chunk, and `onStall` is called; call `resume()` once a slot is free).
 * Each message body starts at offset 1 of its slot.
 *
 * With a `placer`, a message whose first bytes equal an expected header has the rest of its body
 * (the payload) written to the placement's `dst` instead; its slot then holds only the header, and
 * onMessage gets `placed` = dst. A message that does not match goes to its slot as usual.
 */
export class GrpcMessageReader {
  private readonly prefix = new Uint8Array(5);
  private prefixGot = 0;
  private bodyLength = -1;
  private bodyGot = 0;
  private slot: Slot | null = null;
  private readonly pending: Uint8Array[] = [];
  private stalled = false;
  /** The current message's candidate placement (header not yet checked, or `placed`). */
  private placing: Placement | null = null;
  private placed = false;
  /** The current placed message was abandoned: the rest goes to its slot and the message is dropped. */
  private torn = false;

  constructor(
    private readonly maxBody: number,
    private readonly acquire: () => Slot | null,
    private readonly onMessage: (slot: Slot, body: Uint8Array, placed: Uint8Array | null) => void,
    private readonly onStall: () => void,
    private readonly placer?: MessagePlacer,
  ) {}

  get isStalled(): boolean {
    return this.stalled;
  }

  /** Bytes received but not yet parsed (kept while stalled). */
  get pendingChunks(): number {
    return this.pending.length;
  }

  /**
   * `transient`: `chunk` is a view of a buffer the caller reuses after this call (a socket read
   * buffer), so whatever the reader must keep (only while stalled) is copied.
   */
  push(chunk: Uint8Array, transient = false): void {
    if (this.stalled) {
      this.pending.push(transient ? chunk.slice() : chunk);
      return;
    }
    const rest = this.consume(chunk);
    if (rest) {
      this.pending.push(transient ? rest.slice() : rest);
      this.stalled = true;
      this.onStall();
    }
  }

  /** Continue after a slot was freed; returns true if no longer stalled. */
  resume(): boolean {
    if (!this.stalled) return true;
    while (this.pending.length > 0) {
      const rest = this.consume(this.pending[0]!);
      if (rest) {
        this.pending[0] = rest;
        return false;
      }
      this.pending.shift();
    }
    this.stalled = false;
    return true;
  }

  /**
   * Stop writing into the current placement (the collective it belongs to is over, failed): the rest
   * of that message goes to its slot and the message is dropped, so no byte lands in `dst` afterwards.
   */
  abandonPlacement(): void {
    if (!this.placing) return;
    if (this.placed) this.torn = true;
    this.placing = null;
    this.placed = false;
  }

  /** Parses as much of `chunk` as slots allow; returns the unparsed rest, or null. */
  private consume(chunk: Uint8Array): Uint8Array | null {
    let pos = 0;
    const end = chunk.length;
    while (pos < end || this.bodyLength === 0) {
      if (this.bodyLength < 0) {
        const n = Math.min(5 - this.prefixGot, end - pos);
        for (let i = 0; i < n; i++) this.prefix[this.prefixGot + i] = chunk[pos + i]!;
        this.prefixGot += n;
        pos += n;
        if (this.prefixGot < 5) return null;
        if (this.prefix[0] !== 0) throw new RingProtocolError('compressed gRPC messages are not supported on the ring');
        const p = this.prefix;
        const length = ((p[1]! << 24) >>> 0) + (p[2]! << 16) + (p[3]! << 8) + p[4]!;
        if (length > this.maxBody) {
          throw new RingProtocolError(`gRPC message of ${length} bytes exceeds the ring's limit of ${this.maxBody}`);
        }
        this.bodyLength = length;
        this.bodyGot = 0;
        this.placing = this.placer?.candidate(length) ?? null;
      }
      if (!this.slot) {
        this.slot = this.acquire();
        if (!this.slot) return chunk.subarray(pos);
      }
      const t = this.target();
      const n = Math.min(t.length, end - pos);
      if (n > 0) {
        t.set(n === end - pos && pos === 0 ? chunk : chunk.subarray(pos, pos + n));
        pos += n;
      }
      this.advance(n);
    }
    return null;
  }

  /** Where the next body bytes go: the slot (up to the end of a candidate's header) or the placement. */
  private target(): Uint8Array {
    const p = this.placing;
    if (p && this.placed) return p.dst.subarray(this.bodyGot - p.head.length);
    const stop = p ? p.head.length : this.bodyLength;
    return this.slot!.bytes.subarray(1 + this.bodyGot, 1 + stop);
  }

  private advance(n: number): void {
    this.bodyGot += n;
    const p = this.placing;
    if (p && !this.placed && this.bodyGot === p.head.length) {
      const got = this.slot!.bytes;
      let same = true;
      for (let i = 0; i < p.head.length && same; i++) same = got[1 + i] === p.head[i];
      if (same) {
        this.placed = true;
        this.placer!.taken(p);
      } else this.placing = null;
    }
    if (this.bodyGot === this.bodyLength) this.complete();
  }

  /**
   * Where the rest of the current message body can be written directly (a view of its slot, or of its
   * placement), so a socket can read into it; null when no body is in progress, the reader is stalled
   * or no slot is free. Report what was written with directFilled().
   */
  directTarget(): Uint8Array | null {
    if (this.stalled || this.bodyLength < 0 || this.bodyGot >= this.bodyLength) return null;
    if (!this.slot) this.slot = this.acquire();
    return this.slot ? this.target() : null;
  }

  /** `n` bytes were written at the start of the last directTarget(). */
  directFilled(n: number): void {
    this.advance(n);
  }

  private complete(): void {
    const slot = this.slot!;
    const placed = this.placed ? this.placing!.dst : null;
    const torn = this.torn;
    const body = slot.bytes.subarray(1, 1 + (placed ? this.placing!.head.length : this.bodyLength));
    this.slot = null;
    this.bodyLength = -1;
    this.prefixGot = 0;
    this.placing = null;
    this.placed = false;
    this.torn = false;
    if (torn) this.placer!.dropped(slot);
    else this.onMessage(slot, body, placed);
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
export function decodeGrpcMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return '';
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** One gRPC message: prefix + body (for the small control messages). */
export function framed(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  writeGrpcPrefix(out, 0, body.length);
  out.set(body, 5);
  return out;
}

/** The one message of a unary request or response body (small: concatenation is fine here). */
export function unframe(chunks: Buffer[]): Buffer | null {
  const all = Buffer.concat(chunks);
  if (all.length < 5 || all[0] !== 0) return null;
  const len = all.readUInt32BE(1);
  return all.length === 5 + len ? all.subarray(5) : null;
}
