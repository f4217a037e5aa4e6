/**
 * HTTP/2 wire constants and small frame helpers for the raw-h2 transport (RFC 9113): frame types,
 * flags, error codes, the limits we announce, frame writing and the connection error the parser throws.
 */
import type { Socket } from 'node:net';


export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Largest SETTINGS_MAX_FRAME_SIZE HTTP/2 allows (2^24 - 1); what we accept and announce. */
export const MAX_FRAME_SIZE = (1 << 24) - 1;
export const MAX_WINDOW = 2 ** 31 - 1;
/** Replenish a receive window once this much of it has been used. */
export const WINDOW_REFILL = 2 ** 30;
export const DEFAULT_WINDOW = 65_535;
/** Header blocks (with CONTINUATION) larger than this are refused: a gRPC call has a handful of headers. */
export const MAX_HEADER_BLOCK = 256 * 1024;

/** Frame types (RFC 9113 6). */
export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;
export const PADDED = 0x8;
export const PRIORITY_FLAG = 0x20;

/** HTTP/2 error codes (RFC 9113 7) we send or name. */
export const H2Error = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9 } as const;
/** The code streams are reset with when the connection itself is lost (not an HTTP/2 code). */
export const CONNECTION_LOST = -1;

/** A connection error (RFC 9113 5.4.1): the connection sends GOAWAY with `code` and closes. */
export class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function readU32(p: Uint8Array, at: number): number {
  return ((p[at]! << 24) >>> 0) + (p[at + 1]! << 16) + (p[at + 2]! << 8) + p[at + 3]!;
}

export function settingsPayload(settings: number[][]): Buffer {
  const p = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, v], i) => {
    p.writeUInt16BE(id!, 6 * i);
    p.writeUInt32BE(v!, 6 * i + 2);
  });
  return p;
}

export function u32Payload(v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(v);
  return p;
}

export function goawayPayload(lastStreamId: number, code: number, debug: string): Buffer {
  const d = Buffer.from(debug);
  const p = Buffer.alloc(8 + d.length);
  p.writeUInt32BE(lastStreamId, 0);
  p.writeUInt32BE(code, 4);
  d.copy(p, 8);
  return p;
}

/**
 * One frame as socket writes of the 9-byte header and the payload pieces (not copied: they must stay
 * untouched until `cb`, which fires once the last is on the socket).
 */
export function writeFrame(socket: Socket, type: number, flags: number, id: number, payload: Uint8Array | readonly Uint8Array[], cb?: (e?: Error | null) => void): void {
  if (socket.destroyed || !socket.writable) {
    cb?.(new Error('socket closed'));
    return;
  }
  const parts = payload instanceof Uint8Array ? [payload] : payload;
  const h = Buffer.allocUnsafe(9);
  let n = 0;
  for (const p of parts) n += p.length;
  h[0] = n >>> 16;
  h[1] = (n >>> 8) & 255;
  h[2] = n & 255;
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id & 0x7fffffff, 5);
  if (n === 0) return void socket.write(h, cb);
  socket.write(h);
  const last = parts.length - 1;
  parts.forEach((p, i) => (p.length > 0 || i === last) && socket.write(p, i === last ? cb : undefined));
}
