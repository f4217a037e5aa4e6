/**
 * Hand-written protobuf framing of ringtune.v1.RingChunk (proto/ringtune/v1/ring.proto), the one
 * message on the hot path. Written by hand so the payload is encoded by the codec straight into a
 * reused buffer and decoded as a view of the received bytes: no repeated-float fields, no protobufjs
 * object per message, no extra copy. The bytes are canonical proto3 (fields in number order, defaults
 * omitted): tests/collective/wire.test.ts checks they equal protobufjs's encoding of the same message,
 * so any protobuf library can read the stream.
 *
 * Layout the encoder produces, payload last:
 *   0a len job_id | 10 step | 18 round | 20 chunk | 28 part | 30 rank | 38 codec | 40 elements |
 *   48 abort | 50 lost_rank | 5a len reason | 72 len pad | 7a len payload
 * (fields equal to their proto3 default are omitted). Alignment, twice over: `pad` (1-4 bytes) makes
 * the header 3 mod 4 bytes long, so after gRPC's 5-byte frame prefix the payload sits at a multiple
 * of 4 in the receiver's buffer and decodes as a typed-array view without a copy; and the encoder
 * writes the header at an offset of the reused send buffer that aligns the payload there too.
 */
import type { WireCodec } from './codecs.ts';
import { RingProtocolError } from './errors.ts';

export interface ChunkFields {
  jobId: string;
  step: number;
  round: number;
  chunk: number;
  part: number;
  rank: number;
  /** proto enum Codec: 1 fp32, 2 bf16, 3 fp16, 0 for abort messages. */
  codec: number;
  elements: number;
  abort: boolean;
  lostRank: number;
  reason: string;
}

export interface DecodedChunk extends ChunkFields {
  /** View into the received bytes (no copy); may be unaligned. */
  payload: Uint8Array;
}

/** Upper bound of the header size for a job id of `jobIdBytes` bytes and a reason of `reasonBytes`. */
export function maxHeaderBytes(jobIdBytes: number, reasonBytes = 0): number {
  // 13 tags + 3 length varints (5) + step varint (10) + 8 uint32 varints (5) + strings + pad (4)
  // + alignment offset in the send buffer (3).
  return 13 + 15 + 10 + 40 + jobIdBytes + reasonBytes + 4 + 3;
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function putVarint(buf: Uint8Array, pos: number, v: number): number {
  // Division, not >>>, so values above 2^32 (steps) up to 2^53 encode correctly.
  while (v >= 128) {
    buf[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

function putField(buf: Uint8Array, pos: number, tag: number, v: number): number {
  if (v === 0) return pos;
  buf[pos++] = tag;
  return putVarint(buf, pos, v);
}

function putBytes(buf: Uint8Array, pos: number, tag: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return pos;
  buf[pos++] = tag;
  pos = putVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

const utf8 = new TextEncoder();

/**
 * Writes RingChunk messages into caller-owned buffers. `header` is a small scratch area reused for
 * every message; the payload goes straight into `out` via the codec.
 */
export class ChunkEncoder {
  private readonly header: Uint8Array;
  private readonly jobId: Uint8Array;

  constructor(jobId: string) {
    this.jobId = utf8.encode(jobId);
    this.header = new Uint8Array(maxHeaderBytes(this.jobId.length, 1024));
  }

  /** Size of `out` needed for messages of up to `elements` values (4-byte codec, or fp16's 4 + 2n) plus header. */
  bufferBytes(maxElements: number): number {
    return maxHeaderBytes(this.jobId.length) + 4 * maxElements + 4;
  }

  /**
   * Encodes one message into `out`; `values` are encoded with `codec` (null for an abort). Returns the
   * view of `out` holding the message.
   */
  encode(out: Uint8Array, f: Omit<ChunkFields, 'jobId'>, values: Float32Array | null, codec: WireCodec | null): Uint8Array {
    const payloadBytes = values && codec ? codec.payloadBytes(values.length) : 0;
    const h = this.encodeHeader(f, payloadBytes);
    const pos = h.length;
    // Start so that the payload (after `pos` header bytes) lands on a 4-byte boundary of `out`.
    const start = (4 - ((out.byteOffset + pos) % 4)) % 4;
    if (start + pos + payloadBytes > out.length) {
      throw new RingProtocolError(`message of ${payloadBytes} payload bytes does not fit a ${out.length}-byte buffer`);
    }
    out.set(h, start);
    if (payloadBytes > 0) codec!.encode(values!, out.subarray(start + pos));
    return out.subarray(start, start + pos + payloadBytes);
  }

  /**
   * Everything of the message before its payload of `payloadBytes` bytes (the payload's tag and length
   * included), as a view of a scratch buffer reused by the next call. Lets a transport send an fp32
   * payload straight from the caller's array: header, then payload, nothing copied.
   */
  encodeHeader(f: Omit<ChunkFields, 'jobId'>, payloadBytes: number): Uint8Array {
    const h = this.header;
    let pos = putBytes(h, 0, 0x0a, this.jobId);
    pos = putField(h, pos, 0x10, f.step);
    pos = putField(h, pos, 0x18, f.round);
    pos = putField(h, pos, 0x20, f.chunk);
    pos = putField(h, pos, 0x28, f.part);
    pos = putField(h, pos, 0x30, f.rank);
    pos = putField(h, pos, 0x38, f.codec);
    pos = putField(h, pos, 0x40, f.elements);
    pos = putField(h, pos, 0x48, f.abort ? 1 : 0);
    pos = putField(h, pos, 0x50, f.lostRank);
    if (f.reason) pos = putBytes(h, pos, 0x5a, utf8.encode(f.reason).subarray(0, 1024));
    if (payloadBytes > 0) {
      // pad: 2 + padLen bytes, chosen so the whole header (pos + pad + payload tag/length) is 3 mod 4.
      const tail = 1 + varintSize(payloadBytes);
      const padLen = ((3 - pos - 2 - tail) % 4 + 4) % 4 || 4;
      h[pos++] = 0x72;
      h[pos++] = padLen;
      h.fill(0, pos, pos + padLen);
      pos += padLen;
      h[pos++] = 0x7a;
      pos = putVarint(h, pos, payloadBytes);
    }
    return h.subarray(0, pos);
  }
}

const utf8d = new TextDecoder();

/**
 * Parses a RingChunk; the payload is a view of `buf`. Unknown fields are skipped (forward compat).
 * `placed`: `buf` ends with the payload's tag and length, the payload itself having been read
 * elsewhere (grpc-framing.ts placements); it becomes the payload if the length matches.
 */
export function decodeChunk(buf: Uint8Array, placed: Uint8Array | null = null): DecodedChunk {
  const m: DecodedChunk = {
    jobId: '', step: 0, round: 0, chunk: 0, part: 0, rank: 0, codec: 0, elements: 0,
    abort: false, lostRank: 0, reason: '', payload: buf.subarray(0, 0),
  };
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (pos >= buf.length) throw new RingProtocolError('truncated RingChunk varint');
      const b = buf[pos++]!;
      v += (b & 127) * scale;
      if (b < 128) return v;
      scale *= 128;
    }
  };
  const bytes = (): Uint8Array => {
    const len = varint();
    if (pos + len > buf.length) throw new RingProtocolError('truncated RingChunk field');
    const view = buf.subarray(pos, pos + len);
    pos += len;
    return view;
  };
  while (pos < buf.length) {
    const tag = varint();
    switch (tag) {
      case 0x0a: m.jobId = utf8d.decode(bytes()); break;
      case 0x10: m.step = varint(); break;
      case 0x18: m.round = varint(); break;
      case 0x20: m.chunk = varint(); break;
      case 0x28: m.part = varint(); break;
      case 0x30: m.rank = varint(); break;
      case 0x38: m.codec = varint(); break;
      case 0x40: m.elements = varint(); break;
      case 0x48: m.abort = varint() !== 0; break;
      case 0x50: m.lostRank = varint(); break;
      case 0x5a: m.reason = utf8d.decode(bytes()); break;
      case 0x72: bytes(); break; // pad
      case 0x7a: m.payload = placed && pos === buf.length - varintSize(placed.length) ? placedPayload() : bytes(); break;
      default:
        skip(tag & 7);
    }
  }
  return m;

  function placedPayload(): Uint8Array {
    if (varint() !== placed!.length) throw new RingProtocolError('placed RingChunk payload of the wrong length');
    return placed!;
  }

  function skip(wireType: number): void {
    if (wireType === 0) varint();
    else if (wireType === 1) pos += 8;
    else if (wireType === 2) bytes();
    else if (wireType === 5) pos += 4;
    else throw new RingProtocolError(`unsupported wire type ${wireType} in RingChunk`);
  }
}
