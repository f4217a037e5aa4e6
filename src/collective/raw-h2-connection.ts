/**
 * The HTTP/2 subset (RFC 9113) a gRPC ring link needs, written on a byte socket (net.Socket or
 * tls.TLSSocket) so the ring owns every buffer: one connection carries a long-lived Pull stream (or a
 * unary Ping) with gRPC's headers, DATA and trailers.
 *
 * Frames handled: DATA, HEADERS (+CONTINUATION, padding and priority fields skipped), RST_STREAM,
 * SETTINGS (+ACK), PING (+ACK), GOAWAY, WINDOW_UPDATE; PRIORITY and unknown types are ignored,
 * PUSH_PROMISE is a protocol error (we send ENABLE_PUSH 0).
 *
 * Receive path: bytes arrive in chunks from a caller-owned read buffer (`feed`, reused after each
 * call). The frame parser copies only the 9-byte frame header; an unpadded DATA frame's payload is
 * handed to its stream as views of the read buffer as it arrives (never reassembled, no per-frame
 * allocation), so a 1 MiB gRPC message in one 1 MiB DATA frame costs one header parse. Other frames
 * are small and collected into their own buffer.
 *
 * Settings we announce: SETTINGS_MAX_FRAME_SIZE 2^24 - 1 and SETTINGS_INITIAL_WINDOW_SIZE 2^31 - 1,
 * plus the connection window raised to 2^31 - 1: flow control never stalls a sender of ours; the
 * receiver's backpressure is TCP's (it stops reading the socket). We still replenish both windows as
 * bytes arrive. Sending honours the peer's windows and frame size (a stock grpc-js peer keeps 16 KiB
 * frames and a 64 KiB window and gets exactly that).
 */
import type { Socket } from 'node:net';
import { HpackDecoder, hpackEncode, type HeaderList } from './raw-h2-hpack.ts';

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Largest SETTINGS_MAX_FRAME_SIZE HTTP/2 allows (2^24 - 1); what we accept and announce. */
export const MAX_FRAME_SIZE = (1 << 24) - 1;
const MAX_WINDOW = 2 ** 31 - 1;
/** Replenish a receive window once this much of it has been used. */
const WINDOW_REFILL = 2 ** 30;
const DEFAULT_WINDOW = 65_535;
/** Header blocks (with CONTINUATION) larger than this are refused: a gRPC call has a handful of headers. */
const MAX_HEADER_BLOCK = 256 * 1024;

/** Frame types (RFC 9113 6). */
const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

/** HTTP/2 error codes (RFC 9113 7) we send or name. */
export const H2Error = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9 } as const;
/** The code streams are reset with when the connection itself is lost (not an HTTP/2 code). */
export const CONNECTION_LOST = -1;

/** What a stream's owner hears. Chunks passed to onData are views of a buffer reused after the call. */
export interface RawStreamHandlers {
  /** A header block: the first is the request / response headers, a later one the trailers. */
  onHeaders(headers: HeaderList, endStream: boolean): void;
  onData(chunk: Uint8Array): void;
  /** The peer ended its side (END_STREAM on DATA; on HEADERS it comes with onHeaders(…, true) first). */
  onEnd(): void;
  /** Reset by the peer (its RST_STREAM code), or CONNECTION_LOST; the stream is over. */
  onReset(code: number, why: string): void;
}

const IGNORE: RawStreamHandlers = { onHeaders: () => {}, onData: () => {}, onEnd: () => {}, onReset: () => {} };

interface Outgoing {
  /** DATA bytes, or null for the trailers / end marker. */
  readonly data: Uint8Array | null;
  off: number;
  readonly cb: ((err?: Error | null) => void) | undefined;
  /** With data === null: trailers to send with END_STREAM (null = an empty DATA frame with END_STREAM). */
  readonly trailers?: HeaderList | null;
}

export class RawH2Stream {
  handlers: RawStreamHandlers = IGNORE;
  sendWindow: number;
  private recvUnacked = 0;
  private readonly queue: Outgoing[] = [];
  localEnded = false;
  remoteEnded = false;
  closed = false;

  constructor(
    readonly id: number,
    private readonly conn: RawH2Connection,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** Sends a header block (END_STREAM with `endStream`). */
  respond(headers: HeaderList, endStream = false): void {
    if (this.closed || this.localEnded) return;
    this.conn.writeHeaders(this.id, headers, endStream);
    if (endStream) this.endLocal();
  }

  /** Queues DATA (not copied: `data` must stay untouched until `cb`, called once it is on the socket). */
  write(data: Uint8Array, cb?: (err?: Error | null) => void): void {
    if (this.closed || this.localEnded) {
      cb?.(new Error(`HTTP/2 stream ${this.id} is ${this.closed ? 'closed' : 'ended'}`));
      return;
    }
    this.queue.push({ data, off: 0, cb });
    this.conn.pump(this);
  }

  /** Ends our side after the queued DATA: with trailers (gRPC status) or an empty END_STREAM DATA frame. */
  end(trailers: HeaderList | null = null): void {
    if (this.closed || this.localEnded || this.queue.some((q) => q.data === null)) return;
    this.queue.push({ data: null, off: 0, cb: undefined, trailers });
    this.conn.pump(this);
  }

  /** RST_STREAM with `code` (CANCEL like grpc-js's call.cancel()); the stream is over. */
  reset(code: number = H2Error.CANCEL): void {
    if (this.closed) return;
    this.conn.writeRst(this.id, code);
    this.finish(new Error(`stream ${this.id} reset by us`));
  }

  /** Stops / restarts reading the connection (one busy stream per connection: pausing it pauses the socket). */
  pause(): void {
    this.conn.pauseReading();
  }
  resume(): void {
    this.conn.resumeReading();
  }

  /** @internal Writes as much of the queue as the windows allow. */
  drain(maxFrame: number, connWindow: () => number, spend: (n: number) => void, writeData: (id: number, flags: number, b: Uint8Array, cb?: (e?: Error | null) => void) => void): boolean {
    while (this.queue.length > 0) {
      const q = this.queue[0]!;
      if (q.data === null) {
        this.queue.shift();
        if (q.trailers) this.conn.writeHeaders(this.id, q.trailers, true);
        else writeData(this.id, END_STREAM, new Uint8Array(0));
        this.endLocal();
        return true;
      }
      const left = q.data.length - q.off;
      const n = Math.min(left, maxFrame, this.sendWindow, connWindow());
      if (n <= 0 && left > 0) return false; // blocked on a window
      const last = n === left;
      writeData(this.id, 0, q.data.subarray(q.off, q.off + n), last ? q.cb : undefined);
      this.sendWindow -= n;
      spend(n);
      q.off += n;
      if (last) this.queue.shift();
    }
    return true;
  }

  /** @internal DATA bytes received (for WINDOW_UPDATE); returns the increment to send, or 0. */
  received(n: number): number {
    this.recvUnacked += n;
    if (this.recvUnacked < WINDOW_REFILL) return 0;
    const inc = this.recvUnacked;
    this.recvUnacked = 0;
    return inc;
  }

  /** @internal Our END_STREAM went out. */
  endLocal(): void {
    this.localEnded = true;
    if (this.remoteEnded) this.finish(null);
  }

  /** @internal The peer's END_STREAM arrived. */
  endRemote(): void {
    this.remoteEnded = true;
    if (this.localEnded) this.finish(null);
  }

  /** @internal Over: fail queued writes (err) and forget the stream. */
  finish(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.queue.splice(0)) q.cb?.(err ?? new Error(`HTTP/2 stream ${this.id} closed`));
    this.conn.forget(this);
  }
}

export interface RawH2ConnectionOptions {
  readonly role: 'client' | 'server';
  /** Server side: a new stream opened by the client, with its request headers. */
  readonly onStream?: (stream: RawH2Stream, headers: HeaderList, endStream: boolean) => void;
  /** The connection failed or closed; every open stream got onReset(CONNECTION_LOST) first. */
  readonly onClose?: (err: Error | null) => void;
}

export class RawH2Connection {
  private readonly streams = new Map<number, RawH2Stream>();
  private readonly decoder = new HpackDecoder();
  private nextStreamId = 1;
  private lastPeerStreamId = 0;
  private peerMaxFrame = 16_384;
  private peerInitialWindow = DEFAULT_WINDOW;
  private connSendWindow = DEFAULT_WINDOW;
  private connRecvUnacked = 0;
  private readonly blocked = new Set<RawH2Stream>();
  private goneAway = false;
  private closedWith: Error | null | undefined = undefined;
  /** Resolves when the peer's first SETTINGS arrived (the connection is usable). */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (e: Error) => void;
  // Frame parser state.
  private prefaceLeft: number;
  private readonly head = new Uint8Array(9);
  private headGot = 0;
  private frameLen = 0;
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  private payloadLeft = -1; // -1: reading a frame header
  private streaming: RawH2Stream | null = null; // DATA frame whose payload goes to the stream as it arrives
  private collect: Uint8Array | null = null; // any other frame's payload
  private collectGot = 0;
  private headerBlock: { id: number; flags: number; parts: Uint8Array[]; size: number } | null = null;
  private paused = false;
  /** Frames parsed, by kind (for tests and stats). */
  readonly stats = { dataFrames: 0, otherFrames: 0 };

  constructor(
    readonly socket: Socket,
    private readonly o: RawH2ConnectionOptions,
  ) {
    this.prefaceLeft = o.role === 'server' ? CLIENT_PREFACE.length : 0;
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => {});
    socket.on('error', (e: Error) => this.destroy(e));
    socket.on('close', () => this.destroy(null));
    const settings = [[0x4, MAX_WINDOW], [0x5, MAX_FRAME_SIZE]];
    if (o.role === 'client') settings.unshift([0x2, 0]);
    socket.cork();
    if (o.role === 'client') socket.write(CLIENT_PREFACE);
    this.writeFrame(T.SETTINGS, 0, 0, settingsPayload(settings));
    this.writeWindowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW);
    socket.uncork();
  }

  get isOpen(): boolean {
    return this.closedWith === undefined;
  }

  /** Client side: opens a stream with request headers. */
  request(headers: HeaderList, handlers: RawStreamHandlers, endStream = false): RawH2Stream {
    if (!this.isOpen || this.goneAway) throw new Error('HTTP/2 connection is closed');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const s = new RawH2Stream(id, this, this.peerInitialWindow);
    s.handlers = handlers;
    this.streams.set(id, s);
    this.writeHeaders(id, headers, endStream);
    if (endStream) s.endLocal();
    return s;
  }

  /** Bytes from the socket. `chunk` may be reused by the caller as soon as this returns. */
  feed(chunk: Uint8Array): void {
    try {
      this.parse(chunk);
    } catch (e) {
      this.fail(e instanceof ConnectionError ? e.code : H2Error.PROTOCOL_ERROR, (e as Error).message);
    }
  }

  pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Graceful close: GOAWAY, then end the socket once what is queued is written (destroyed after `graceMs`). */
  close(graceMs = 500): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.isOpen || this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.writeGoaway(H2Error.NO_ERROR, '');
      const timer = setTimeout(() => this.socket.destroy(), graceMs);
      this.socket.once('close', () => clearTimeout(timer));
      this.socket.end();
    });
  }

  /** Closes at once: streams get onReset(CONNECTION_LOST). */
  destroy(err: Error | null): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = err;
    this.failReady(err ?? new Error('connection closed before its HTTP/2 settings arrived'));
    const why = err ? `connection failed (${err.message})` : 'connection closed';
    for (const s of [...this.streams.values()]) {
      s.finish(err ?? new Error(why));
      s.handlers.onReset(CONNECTION_LOST, why);
    }
    this.socket.destroy();
    this.o.onClose?.(err);
  }

  // ---- sending ----

  /** @internal */
  pump(s: RawH2Stream): void {
    if (!this.isOpen) return;
    this.socket.cork();
    const done = s.drain(this.peerMaxFrame, () => this.connSendWindow, (n) => (this.connSendWindow -= n), (id, flags, b, cb) => this.writeData(id, flags, b, cb));
    this.socket.uncork();
    if (done) this.blocked.delete(s);
    else this.blocked.add(s);
  }

  /** @internal */
  forget(s: RawH2Stream): void {
    this.streams.delete(s.id);
    this.blocked.delete(s);
  }

  /** @internal One header block; CONTINUATION frames if it exceeds the peer's frame size. */
  writeHeaders(id: number, headers: HeaderList, endStream: boolean): void {
    const block = hpackEncode(headers);
    const max = this.peerMaxFrame;
    if (block.length <= max) return this.writeFrame(T.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), id, block);
    this.socket.cork();
    this.writeFrame(T.HEADERS, endStream ? END_STREAM : 0, id, block.subarray(0, max));
    for (let at = max; at < block.length; at += max) {
      const last = at + max >= block.length;
      this.writeFrame(T.CONTINUATION, last ? END_HEADERS : 0, id, block.subarray(at, at + max));
    }
    this.socket.uncork();
  }

  /** @internal */
  writeRst(id: number, code: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(code);
    this.writeFrame(T.RST_STREAM, 0, id, p);
  }

  private writeData(id: number, flags: number, payload: Uint8Array, cb?: (e?: Error | null) => void): void {
    this.writeFrame(T.DATA, flags, id, payload, cb);
  }

  private writeWindowUpdate(id: number, inc: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(inc);
    this.writeFrame(T.WINDOW_UPDATE, 0, id, p);
  }

  private writeGoaway(code: number, debug: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const d = Buffer.from(debug);
    const p = Buffer.alloc(8 + d.length);
    p.writeUInt32BE(this.lastPeerStreamId, 0);
    p.writeUInt32BE(code, 4);
    d.copy(p, 8);
    this.writeFrame(T.GOAWAY, 0, 0, p);
  }

  /** A 9-byte header and the payload as two writes (the payload is not copied). */
  private writeFrame(type: number, flags: number, id: number, payload: Uint8Array, cb?: (e?: Error | null) => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      cb?.(new Error('socket closed'));
      return;
    }
    const h = Buffer.allocUnsafe(9);
    const n = payload.length;
    h[0] = n >>> 16;
    h[1] = (n >>> 8) & 255;
    h[2] = n & 255;
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id & 0x7fffffff, 5);
    if (n === 0) return void this.socket.write(h, cb);
    this.socket.write(h);
    this.socket.write(payload, cb);
  }

  // ---- receiving ----

  private parse(b: Uint8Array): void {
    let pos = 0;
    const end = b.length;
    if (this.prefaceLeft > 0) {
      const at = CLIENT_PREFACE.length - this.prefaceLeft;
      const n = Math.min(this.prefaceLeft, end);
      for (let i = 0; i < n; i++) {
        if (b[i] !== CLIENT_PREFACE[at + i]) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'not an HTTP/2 client preface');
      }
      this.prefaceLeft -= n;
      pos = n;
    }
    while (pos < end && this.closedWith === undefined) {
      if (this.payloadLeft < 0) {
        const n = Math.min(9 - this.headGot, end - pos);
        for (let i = 0; i < n; i++) this.head[this.headGot + i] = b[pos + i]!;
        this.headGot += n;
        pos += n;
        if (this.headGot < 9) return;
        this.headGot = 0;
        this.startFrame();
        if (this.payloadLeft === 0) this.endFrame();
        continue;
      }
      const n = Math.min(this.payloadLeft, end - pos);
      if (this.streaming) {
        if (n > 0) this.streaming.handlers.onData(b.subarray(pos, pos + n));
      } else if (this.collect) {
        this.collect.set(b.subarray(pos, pos + n), this.collectGot);
        this.collectGot += n;
      }
      pos += n;
      this.payloadLeft -= n;
      if (this.payloadLeft === 0) this.endFrame();
    }
  }

  private startFrame(): void {
    const h = this.head;
    this.frameLen = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    this.frameType = h[3]!;
    this.frameFlags = h[4]!;
    this.frameStream = ((h[5]! & 0x7f) << 24 | (h[6]! << 16) | (h[7]! << 8) | h[8]!) >>> 0;
    if (this.frameLen > MAX_FRAME_SIZE) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, `frame of ${this.frameLen} bytes`);
    if (this.headerBlock && this.frameType !== T.CONTINUATION) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'header block interrupted');
    this.payloadLeft = this.frameLen;
    this.streaming = null;
    this.collect = null;
    if (this.frameType === T.DATA) {
      this.stats.dataFrames++;
      const s = this.dataStream();
      this.onDataBytes(s, this.frameLen);
      if (!(this.frameFlags & PADDED)) {
        this.streaming = s; // null (a stream we no longer know): the payload is skipped
        return;
      }
    } else this.stats.otherFrames++;
    this.collect = new Uint8Array(this.frameLen);
    this.collectGot = 0;
  }

  private endFrame(): void {
    const type = this.frameType;
    const flags = this.frameFlags;
    const id = this.frameStream;
    const p = this.collect ?? new Uint8Array(0);
    this.payloadLeft = -1;
    this.streaming = null;
    this.collect = null;
    switch (type) {
      case T.DATA: {
        const s = this.streams.get(id);
        if (s && flags & PADDED) {
          const pad = p[0] ?? 0;
          if (pad >= p.length) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA padding too long');
          s.handlers.onData(p.subarray(1, p.length - pad));
        }
        if (s && flags & END_STREAM) {
          s.handlers.onEnd();
          s.endRemote();
        }
        return;
      }
      case T.HEADERS: {
        if (id === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'HEADERS on stream 0');
        let at = 0;
        let stop = p.length;
        if (flags & PADDED) {
          stop -= p[0] ?? 0;
          at = 1;
        }
        if (flags & PRIORITY_FLAG) at += 5;
        if (at > stop) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'HEADERS padding too long');
        this.headerBlock = { id, flags, parts: [p.subarray(at, stop)], size: stop - at };
        if (flags & END_HEADERS) this.endHeaderBlock();
        return;
      }
      case T.CONTINUATION: {
        const hb = this.headerBlock;
        if (!hb || hb.id !== id) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'unexpected CONTINUATION');
        hb.parts.push(p);
        hb.size += p.length;
        if (hb.size > MAX_HEADER_BLOCK) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'header block too large');
        if (flags & END_HEADERS) this.endHeaderBlock();
        return;
      }
      case T.RST_STREAM: {
        const s = this.streams.get(id);
        if (!s) return;
        const code = p.length >= 4 ? readU32(p, 0) : H2Error.PROTOCOL_ERROR;
        s.finish(new Error(`stream reset by the peer (HTTP/2 code ${code})`));
        s.handlers.onReset(code, `reset by the peer (HTTP/2 code ${code})`);
        return;
      }
      case T.SETTINGS: {
        if (flags & ACK) return;
        if (p.length % 6 !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'SETTINGS length');
        for (let i = 0; i < p.length; i += 6) this.applySetting((p[i]! << 8) | p[i + 1]!, readU32(p, i + 2));
        this.writeFrame(T.SETTINGS, ACK, 0, new Uint8Array(0));
        this.markReady();
        for (const s of [...this.blocked]) this.pump(s);
        return;
      }
      case T.PING:
        if (!(flags & ACK)) this.writeFrame(T.PING, ACK, 0, Buffer.from(p));
        return;
      case T.GOAWAY: {
        this.goneAway = true;
        const last = p.length >= 4 ? readU32(p, 0) & 0x7fffffff : 0;
        const code = p.length >= 8 ? readU32(p, 4) : 0;
        for (const s of [...this.streams.values()]) {
          if (s.id > last && s.id % 2 === (this.o.role === 'client' ? 1 : 0)) {
            s.finish(new Error('GOAWAY'));
            s.handlers.onReset(H2Error.REFUSED_STREAM, `connection going away (HTTP/2 code ${code})`);
          }
        }
        return;
      }
      case T.WINDOW_UPDATE: {
        const inc = p.length >= 4 ? readU32(p, 0) & 0x7fffffff : 0;
        if (id === 0) {
          this.connSendWindow += inc;
          for (const s of [...this.blocked]) this.pump(s);
        } else {
          const s = this.streams.get(id);
          if (s) {
            s.sendWindow += inc;
            this.pump(s);
          }
        }
        return;
      }
      case T.PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE with push disabled');
      default:
        return; // PRIORITY, unknown extension frames
    }
  }

  private endHeaderBlock(): void {
    const hb = this.headerBlock!;
    this.headerBlock = null;
    const block = hb.parts.length === 1 ? hb.parts[0]! : Buffer.concat(hb.parts);
    let headers: HeaderList;
    try {
      headers = this.decoder.decode(block);
    } catch (e) {
      throw new ConnectionError(H2Error.COMPRESSION_ERROR, (e as Error).message);
    }
    const endStream = (hb.flags & END_STREAM) !== 0;
    let s = this.streams.get(hb.id);
    if (!s) {
      if (this.o.role !== 'server' || hb.id % 2 !== 1 || hb.id <= this.lastPeerStreamId) return; // a stream we forgot
      this.lastPeerStreamId = hb.id;
      s = new RawH2Stream(hb.id, this, this.peerInitialWindow);
      this.streams.set(hb.id, s);
      if (endStream) s.remoteEnded = true;
      this.o.onStream?.(s, headers, endStream);
      return;
    }
    s.handlers.onHeaders(headers, endStream);
    if (endStream) {
      s.handlers.onEnd();
      s.endRemote();
    }
  }

  private dataStream(): RawH2Stream | null {
    return this.streams.get(this.frameStream) ?? null;
  }

  /** Flow control on receipt: refill the connection's and the stream's windows once half used. */
  private onDataBytes(s: RawH2Stream | null, n: number): void {
    this.connRecvUnacked += n;
    if (this.connRecvUnacked >= WINDOW_REFILL) {
      this.writeWindowUpdate(0, this.connRecvUnacked);
      this.connRecvUnacked = 0;
    }
    const inc = s?.received(n) ?? 0;
    if (inc > 0 && !s!.remoteEnded) this.writeWindowUpdate(s!.id, inc);
  }

  private applySetting(id: number, v: number): void {
    if (id === 0x4) {
      if (v > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'initial window too large');
      const delta = v - this.peerInitialWindow;
      this.peerInitialWindow = v;
      for (const s of this.streams.values()) s.sendWindow += delta;
    } else if (id === 0x5) {
      if (v < 16_384 || v > MAX_FRAME_SIZE) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `max frame size ${v}`);
      this.peerMaxFrame = v;
    }
    // HEADER_TABLE_SIZE: our encoder uses no dynamic table. ENABLE_PUSH, MAX_CONCURRENT_STREAMS,
    // MAX_HEADER_LIST_SIZE: we open one stream and send a handful of headers.
  }

  private fail(code: number, why: string): void {
    this.writeGoaway(code, why);
    this.destroy(new Error(`HTTP/2 protocol error: ${why}`));
  }
}

class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function readU32(p: Uint8Array, at: number): number {
  return ((p[at]! << 24) >>> 0) + (p[at + 1]! << 16) + (p[at + 2]! << 8) + p[at + 3]!;
}

function settingsPayload(settings: number[][]): Buffer {
  const p = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, v], i) => {
    p.writeUInt16BE(id!, 6 * i);
    p.writeUInt32BE(v!, 6 * i + 2);
  });
  return p;
}
