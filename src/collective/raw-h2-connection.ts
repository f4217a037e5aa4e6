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
import {
  ACK, CLIENT_PREFACE, ConnectionError, CONNECTION_LOST, DEFAULT_WINDOW, END_HEADERS, END_STREAM, H2Error, MAX_FRAME_SIZE,
  goawayPayload, MAX_HEADER_BLOCK, MAX_WINDOW, PADDED, PRIORITY_FLAG, readU32, settingsPayload, T, u32Payload, WINDOW_REFILL, writeFrame,
} from './raw-h2-frames.ts';
import { HpackDecoder, hpackEncode, type HeaderList } from './raw-h2-hpack.ts';
import { RawH2Stream, type RawStreamHandlers, type StreamHost } from './raw-h2-stream.ts';

export { CLIENT_PREFACE, CONNECTION_LOST, H2Error, MAX_FRAME_SIZE } from './raw-h2-frames.ts';
export { RawH2Stream, type RawStreamHandlers } from './raw-h2-stream.ts';

export interface RawH2ConnectionOptions {
  readonly role: 'client' | 'server';
  /** Server side: a new stream opened by the client, with its request headers. */
  readonly onStream?: (stream: RawH2Stream, headers: HeaderList, endStream: boolean) => void;
  /** The connection failed or closed; every open stream got onReset(CONNECTION_LOST) first. */
  readonly onClose?: (err: Error | null) => void;
}

export class RawH2Connection implements StreamHost {
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

  /**
   * Where the next socket read may go directly: the stream's target (a receive slot) when at least
   * `minBytes` of the current DATA frame's payload are still to come, cut to the frame's end; else null.
   */
  readTarget(minBytes: number): Uint8Array | null {
    const s = this.streaming;
    if (!s || this.payloadLeft < minBytes || !s.handlers.target || this.closedWith !== undefined) return null;
    const t = s.handlers.target();
    if (!t || t.length < minBytes) return null;
    return t.length > this.payloadLeft ? t.subarray(0, this.payloadLeft) : t;
  }

  /** `n` bytes were read into the last readTarget(): DATA payload the stream already holds. */
  fedDirect(n: number): void {
    if (this.closedWith !== undefined) return;
    try {
      this.streaming!.handlers.filled!(n);
      this.payloadLeft -= n;
      if (this.payloadLeft === 0) this.endFrame();
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
    this.writeFrame(T.RST_STREAM, 0, id, u32Payload(code));
  }

  private writeData(id: number, flags: number, payload: Uint8Array[], cb?: (e?: Error | null) => void): void {
    this.writeFrame(T.DATA, flags, id, payload, cb);
  }

  private writeWindowUpdate(id: number, inc: number): void {
    this.writeFrame(T.WINDOW_UPDATE, 0, id, u32Payload(inc));
  }

  private writeGoaway(code: number, debug: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.writeFrame(T.GOAWAY, 0, 0, goawayPayload(this.lastPeerStreamId, code, debug));
  }

  private writeFrame(type: number, flags: number, id: number, payload: Uint8Array | Uint8Array[], cb?: (e?: Error | null) => void): void {
    writeFrame(this.socket, type, flags, id, payload, cb);
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
