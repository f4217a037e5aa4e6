/**
 * One HTTP/2 stream of a raw-h2 connection: its handlers (what its owner hears), its send queue
 * (DATA views written without copying, flow-controlled by the peer's windows; trailers last) and its
 * half-closed states. The connection (raw-h2-connection.ts) owns the socket and parses frames; a
 * stream reaches it only through StreamHost, so the two files do not import each other.
 */
import { END_STREAM, H2Error, WINDOW_REFILL } from './raw-h2-frames.ts';
import type { HeaderList } from './raw-h2-hpack.ts';

/** What a stream needs from its connection. */
export interface StreamHost {
  writeHeaders(id: number, headers: HeaderList, endStream: boolean): void;
  writeRst(id: number, code: number): void;
  /** Writes as much of the stream's queue as the windows allow. */
  pump(s: RawH2Stream): void;
  /** The stream is over: drop it from the connection's tables. */
  forget(s: RawH2Stream): void;
  pauseReading(): void;
  resumeReading(): void;
}

/** What a stream's owner hears. Chunks passed to onData are views of a buffer reused after the call. */
export interface RawStreamHandlers {
  /** A header block: the first is the request / response headers, a later one the trailers. */
  onHeaders(headers: HeaderList, endStream: boolean): void;
  onData(chunk: Uint8Array): void;
  /** The peer ended its side (END_STREAM on DATA; on HEADERS it comes with onHeaders(…, true) first). */
  onEnd(): void;
  /** Reset by the peer (its RST_STREAM code), or CONNECTION_LOST; the stream is over. */
  onReset(code: number, why: string): void;
  /** Optional: memory the next DATA bytes may be read into directly (instead of onData), or null. */
  target?(): Uint8Array | null;
  /** With target: `n` bytes were read into the start of the last target. */
  filled?(n: number): void;
}

const IGNORE: RawStreamHandlers = { onHeaders: () => {}, onData: () => {}, onEnd: () => {}, onReset: () => {} };

interface Outgoing {
  /** DATA bytes (pieces sent back to back), or null for the trailers / end marker. */
  readonly data: readonly Uint8Array[] | null;
  /** Where the next frame starts: piece index, offset in it, bytes left in all pieces. */
  piece: number;
  off: number;
  left: number;
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
    private readonly conn: StreamHost,
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
  write(data: Uint8Array | readonly Uint8Array[], cb?: (err?: Error | null) => void): void {
    if (this.closed || this.localEnded) {
      cb?.(new Error(`HTTP/2 stream ${this.id} is ${this.closed ? 'closed' : 'ended'}`));
      return;
    }
    const pieces = data instanceof Uint8Array ? [data] : data;
    this.queue.push({ data: pieces, piece: 0, off: 0, left: pieces.reduce((a, p) => a + p.length, 0), cb });
    this.conn.pump(this);
  }

  /** Ends our side after the queued DATA: with trailers (gRPC status) or an empty END_STREAM DATA frame. */
  end(trailers: HeaderList | null = null): void {
    if (this.closed || this.localEnded || this.queue.some((q) => q.data === null)) return;
    this.queue.push({ data: null, piece: 0, off: 0, left: 0, cb: undefined, trailers });
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
  drain(maxFrame: number, connWindow: () => number, spend: (n: number) => void, writeData: (id: number, flags: number, b: Uint8Array[], cb?: (e?: Error | null) => void) => void): boolean {
    while (this.queue.length > 0) {
      const q = this.queue[0]!;
      if (q.data === null) {
        this.queue.shift();
        if (q.trailers) this.conn.writeHeaders(this.id, q.trailers, true);
        else writeData(this.id, END_STREAM, []);
        this.endLocal();
        return true;
      }
      const n = Math.min(q.left, maxFrame, this.sendWindow, connWindow());
      if (n <= 0 && q.left > 0) return false; // blocked on a window
      // The frame's payload: views of the pieces covering the next n bytes.
      const parts: Uint8Array[] = [];
      for (let need = n; need > 0; ) {
        const p = q.data[q.piece]!;
        const take = Math.min(need, p.length - q.off);
        parts.push(p.subarray(q.off, q.off + take));
        need -= take;
        q.off += take;
        if (q.off === p.length) {
          q.piece++;
          q.off = 0;
        }
      }
      q.left -= n;
      const last = q.left === 0;
      writeData(this.id, 0, parts, last ? q.cb : undefined);
      this.sendWindow -= n;
      spend(n);
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
