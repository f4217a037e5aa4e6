/**
 * The raw-h2 transport of GrpcRing (see transport.ts): gRPC on our own HTTP/2 layer
 * (raw-h2-connection.ts) over net.Socket / tls.TLSSocket, so the ring owns every buffer on the data
 * path. Same wire protocol as the other two transports and interoperable with them and with stock
 * grpc-js (tests/collective/raw-h2-interop.test.ts): `POST /ringtune.v1.Ring/Pull|Ping`,
 * `content-type: application/grpc`, `te: trailers`, 5-byte length-prefixed messages, `grpc-status` /
 * percent-encoded `grpc-message` in trailers (trailers-only responses for refusals), the job token in
 * `x-ringtune-token`, TLS with ALPN `h2` and optional client certificates.
 *
 * What it does that node:http2 cannot (docs/collective.md, "What limits throughput"):
 *  - the receiver (the client: it dials its left neighbour) reads its socket with
 *    `onread: { buffer, callback }`: the rest of a large message straight into its receive slot, the
 *    rest (frame headers, message starts) into one 64 KiB buffer allocated once per connection, so
 *    receiving allocates nothing; under TLS the decrypted chunks come from node as 'data' events instead;
 *  - a ringtune sender writes each gRPC message as one DATA frame (both ends announce
 *    SETTINGS_MAX_FRAME_SIZE 2^24 - 1), fp32 straight from the gradient array, and the receiver parses
 *    one 9-byte header per message;
 *  - flow-control windows are opened to 2^31 - 1; backpressure is TCP's (raw-h2-peer.ts).
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { RingConnectError } from './errors.ts';
import { decodeGrpcMessage, framed, unframe } from './grpc-framing.ts';
import { CONNECTION_LOST, RawH2Connection, type RawH2Stream } from './raw-h2-connection.ts';
import type { HeaderList } from './raw-h2-hpack.ts';
import { header, RawH2Peer } from './raw-h2-peer.ts';
import { peerOptions, type CompiledRingOptions, type RingTlsOptions } from './ring-options.ts';
import {
  controlCodecs, GrpcStatus as Status, PING_PATH, PULL_PATH, refusalText, TOKEN_METADATA_KEY,
  type PingReply, type PingRequest, type PullRequest,
} from './ring-protocol.ts';
import type { PeerContext, Refusal, RingHandlers, RingTransport } from './transport.ts';

/** Requests (PullRequest, PingRequest) are tiny; anything larger is refused. */
const MAX_REQUEST_BYTES = 64 * 1024;
/**
 * The receiving socket's read buffer (allocated once per client connection). Small on purpose: it
 * takes frame headers and the start of each message; the rest of a large message is read straight
 * into its receive slot (DIRECT_READ_MIN_BYTES or more to come), so most payload bytes are never copied.
 */
export const READ_BUFFER_BYTES = 64 * 1024;
/** Reads go straight into a receive slot when at least this much of a message is still to come. */
const DIRECT_READ_MIN_BYTES = 16 * 1024;

interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  mutual: boolean;
  serverNameOverride?: string;
}

function loadTls(t: RingTlsOptions | undefined): TlsFiles | undefined {
  if (!t) return undefined;
  return {
    ca: readFileSync(t.caPath), cert: readFileSync(t.certPath), key: readFileSync(t.keyPath),
    mutual: t.mutual === true, serverNameOverride: t.serverNameOverride,
  };
}

/** A gRPC error from the raw-h2 client: `code` is the grpc-status. */
export class RawH2CallError extends Error {
  override readonly name = 'RawH2CallError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC status ${code}: ${details}`);
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const url = new URL(`http://${address}`);
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) };
}

/**
 * One connection attempt; resolves once the server's SETTINGS arrived (TLS handshake included),
 * rejects on an error or after timeoutMs. Plaintext reads go into one reused buffer (onread).
 */
function connectOnce(address: string, files: TlsFiles | undefined, timeoutMs: number): Promise<RawH2Connection> {
  const { host, port } = splitAddress(address);
  // Created right after the socket; the socket's callbacks run only once it exists.
  const at: { conn?: RawH2Connection } = {};
  let socket: net.Socket;
  if (files) {
    const override = files.serverNameOverride;
    socket = tls.connect({
      host, port, ALPNProtocols: ['h2'], ca: files.ca,
      ...(files.mutual ? { cert: files.cert, key: files.key } : {}),
      // SNI only for names (RFC 6066); the certificate is checked against the override or the dialled host.
      ...(override ? { servername: override } : net.isIP(host) ? {} : { servername: host }),
      checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(override ?? host, cert),
    });
    socket.on('data', (c: Buffer) => at.conn!.feed(c));
  } else {
    // Each read goes into the receive slot itself while a large DATA payload is being received
    // (readTarget), else into one buffer allocated once; node asks `buffer()` after every read.
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let direct: Uint8Array | null = null;
    const buffer = (): Uint8Array => (direct = at.conn?.readTarget(DIRECT_READ_MIN_BYTES) ?? null) ?? readBuffer;
    const callback = (n: number, b: Uint8Array): boolean => {
      if (b === direct) at.conn!.fedDirect(n);
      else at.conn!.feed(b.subarray(0, n));
      return true;
    };
    socket = net.connect({ host, port, noDelay: true, onread: { buffer, callback } });
  }
  socket.setNoDelay(true);
  const conn = (at.conn = new RawH2Connection(socket, { role: 'client' }));
  return new Promise<RawH2Connection>((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.destroy(new Error(`no connection within ${Math.round(timeoutMs)} ms`));
    }, Math.max(1, timeoutMs));
    conn.ready.then(
      () => (clearTimeout(timer), resolve(conn)),
      (e: Error) => (clearTimeout(timer), reject(e)),
    );
  });
}

function requestHeaders(path: string, address: string, token: string, files: TlsFiles | undefined, deadlineMs?: number): HeaderList {
  return [
    [':method', 'POST'], [':scheme', files ? 'https' : 'http'], [':path', path], [':authority', address],
    ['content-type', 'application/grpc'], ['te', 'trailers'], ['grpc-accept-encoding', 'identity'], ['user-agent', 'ringtune-raw-h2/1'],
    ...(deadlineMs !== undefined ? [['grpc-timeout', `${Math.max(1, Math.ceil(deadlineMs))}m`] as [string, string]] : []),
    [TOKEN_METADATA_KEY, token],
  ];
}

/** A unary gRPC call on a fresh raw-h2 connection (closed afterwards); rejects with RawH2CallError. */
export function rawH2Unary(address: string, path: string, body: Uint8Array, token: string, tlsOptions: RingTlsOptions | undefined, deadlineMs: number): Promise<Buffer> {
  return unaryWith(address, path, body, token, loadTls(tlsOptions), deadlineMs);
}

function unaryWith(address: string, path: string, body: Uint8Array, token: string, files: TlsFiles | undefined, deadlineMs: number): Promise<Buffer> {
  let conn: RawH2Connection | null = null;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const call = new Promise<Buffer>((resolve, reject) => {
    timer = setTimeout(() => reject(new RawH2CallError(Status.DEADLINE_EXCEEDED, `no answer within ${deadlineMs} ms`)), deadlineMs);
    connectOnce(address, files, deadlineMs).then(
      (c) => {
        conn = c;
        if (settled) return void c.destroy(null); // the deadline passed while connecting
        const chunks: Buffer[] = [];
        let size = 0;
        let status: string | undefined;
        let details = '';
        const stream = c.request(requestHeaders(path, address, token, files, deadlineMs), {
          onHeaders: (h) => {
            const s = header(h, 'grpc-status');
            if (s !== undefined) {
              status = s;
              details = decodeGrpcMessage(header(h, 'grpc-message'));
            }
          },
          onData: (chunk) => {
            size += chunk.length;
            if (size <= MAX_REQUEST_BYTES) chunks.push(Buffer.from(chunk)); // a copy: the read buffer is reused
          },
          onEnd: () => {
            if (status === undefined) return reject(new RawH2CallError(Status.UNAVAILABLE, 'stream ended without a gRPC status'));
            if (status !== '0') return reject(new RawH2CallError(Number(status), details));
            const msg = unframe(chunks);
            if (!msg) return reject(new RawH2CallError(Status.INTERNAL, 'malformed response message'));
            resolve(msg);
          },
          onReset: (code, why) => reject(new RawH2CallError(Status.UNAVAILABLE, code === CONNECTION_LOST ? why : `stream reset (HTTP/2 code ${code})`)),
        });
        stream.write(framed(body));
        stream.end();
      },
      (e: Error) => reject(new RawH2CallError(Status.UNAVAILABLE, e.message)),
    );
  });
  return call.finally(() => {
    settled = true;
    clearTimeout(timer);
    (conn as RawH2Connection | null)?.destroy(null);
  });
}

/** Ping a ring server over raw-h2 (tests use it against grpc-js servers too). */
export async function rawH2Ping(address: string, req: PingRequest, token: string, tlsOptions: RingTlsOptions | undefined, deadlineMs: number): Promise<PingReply> {
  const reply = await rawH2Unary(address, PING_PATH, controlCodecs.pingRequest.serialize(req), token, tlsOptions, deadlineMs);
  return controlCodecs.pingReply.deserialize(reply);
}

export class RawH2Transport implements RingTransport {
  readonly peer: RawH2Peer | null;
  private readonly files: TlsFiles | undefined;
  private server: net.Server | null = null;
  private readonly conns = new Set<RawH2Connection>();
  private client: RawH2Connection | null = null;
  private closed = false;

  constructor(private readonly o: CompiledRingOptions, ctx: PeerContext) {
    this.files = loadTls(o.tls);
    this.peer =
      o.worldSize > 1
        ? new RawH2Peer(peerOptions(o, ctx))
        : null;
  }

  listen(host: string, port: number, h: RingHandlers): Promise<number> {
    const f = this.files;
    const accept = (socket: net.Socket) => {
      socket.setNoDelay(true);
      if (this.closed) return void socket.destroy();
      const conn = new RawH2Connection(socket, {
        role: 'server',
        onStream: (stream, headers, endStream) => this.onStream(stream, headers, endStream, h),
        onClose: () => this.conns.delete(conn),
      });
      this.conns.add(conn);
      socket.on('data', (c: Buffer) => conn.feed(c));
    };
    const server = f
      ? tls.createServer({ key: f.key, cert: f.cert, ca: f.ca, requestCert: f.mutual, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, accept)
      : net.createServer({ noDelay: true }, accept);
    this.server = server;
    return new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private onStream(stream: RawH2Stream, headers: HeaderList, endStream: boolean, h: RingHandlers): void {
    const ct = header(headers, 'content-type');
    if (header(headers, ':method') !== 'POST' || ct === undefined || !ct.startsWith('application/grpc')) {
      stream.respond([[':status', '415']], true);
      return;
    }
    const path = header(headers, ':path');
    if (path !== PULL_PATH && path !== PING_PATH) return refuse(stream, { code: Status.UNIMPLEMENTED, details: `unknown method ${path}` });
    const token = header(headers, TOKEN_METADATA_KEY);
    const chunks: Buffer[] = [];
    let size = 0;
    const dispatch = () => {
      if (stream.closed) return;
      const body = size <= MAX_REQUEST_BYTES ? unframe(chunks) : null;
      if (!body) return refuse(stream, { code: Status.INTERNAL, details: 'malformed request message' });
      try {
        if (path === PULL_PATH) this.onPull(stream, controlCodecs.pullRequest.deserialize(body), token, h);
        else this.onPing(stream, controlCodecs.pingRequest.deserialize(body), token, h);
      } catch (e) {
        refuse(stream, { code: Status.INTERNAL, details: `cannot parse request: ${(e as Error).message}` });
      }
    };
    stream.handlers = {
      onHeaders: () => {},
      onData: (c) => {
        size += c.length;
        if (size <= MAX_REQUEST_BYTES) chunks.push(Buffer.from(c)); // a copy: the read buffer is reused
      },
      onEnd: dispatch,
      onReset: () => {},
    };
    if (endStream) dispatch();
  }

  private onPull(stream: RawH2Stream, req: PullRequest, token: string | undefined, h: RingHandlers): void {
    const refusal = h.pull(req, token);
    if (refusal) return refuse(stream, refusal);
    stream.respond([[':status', '200'], ['content-type', 'application/grpc']]);
    this.peer!.attachRight(stream);
    h.pullAttached();
  }

  private onPing(stream: RawH2Stream, req: PingRequest, token: string | undefined, h: RingHandlers): void {
    const r = h.ping(req, token);
    if ('code' in r) return refuse(stream, r);
    stream.respond([[':status', '200'], ['content-type', 'application/grpc']]);
    stream.write(framed(controlCodecs.pingReply.serialize(r)));
    stream.end([['grpc-status', '0']]);
  }

  async pullFromLeft(address: string, req: PullRequest, deadline: number): Promise<void> {
    const o = this.o;
    const peer = this.peer!;
    const left = peer.leftRank;
    let conn: RawH2Connection | null = null;
    let lastError: unknown;
    for (let wait = 50; !conn; wait = Math.min(1000, wait * 2)) {
      if (this.closed) throw new RingConnectError(left, address, 'the ring was closed while connecting');
      try {
        conn = await connectOnce(address, this.files, Math.max(1, deadline - Date.now()));
      } catch (e) {
        lastError = e;
        if (Date.now() >= deadline - 5) {
          throw new RingConnectError(left, address, `not reachable within ${o.connectTimeoutMs} ms (${(e as Error).message})`, { cause: lastError });
        }
        await new Promise((r) => setTimeout(r, Math.min(wait, deadline - Date.now())));
      }
    }
    this.client = conn;
    if (this.closed) conn.destroy(null);
    const data = peer.leftHandlers();
    let accepted: { resolve: () => void; reject: (e: Error) => void } | null = null;
    const decided = new Promise<void>((resolve, reject) => (accepted = { resolve, reject }));
    const decide = (err: Error | null) => {
      const a = accepted;
      accepted = null;
      if (a) err ? a.reject(err) : a.resolve();
    };
    const timer = setTimeout(
      () => decide(new RingConnectError(left, address, `did not accept our Pull stream within ${o.connectTimeoutMs} ms`)),
      Math.max(0, deadline - Date.now()),
    );
    // Listen for data at once: the left neighbour may start its first collective early.
    const stream = conn.request(requestHeaders(PULL_PATH, address, o.token, this.files), {
      onHeaders: (headers, endStream) => {
        data.onHeaders(headers, endStream);
        if (!accepted) return;
        const status = header(headers, 'grpc-status');
        if (header(headers, ':status') !== '200') decide(new RingConnectError(left, address, `HTTP status ${header(headers, ':status')}`));
        else if (status !== undefined && status !== '0') {
          const details = decodeGrpcMessage(header(headers, 'grpc-message'));
          decide(new RingConnectError(left, address, refusalText(Number(status), details), { cause: new RawH2CallError(Number(status), details) }));
        } else decide(null);
      },
      onData: data.onData,
      onEnd: data.onEnd,
      target: data.target,
      filled: data.filled,
      onReset: (code, why) => {
        decide(new RingConnectError(left, address, `our Pull stream closed before it was accepted (${code === CONNECTION_LOST ? why : `HTTP/2 code ${code}`})`));
        data.onReset(code, why);
      },
    });
    peer.attachLeft(stream);
    stream.write(framed(controlCodecs.pullRequest.serialize(req)));
    stream.end();
    try {
      await decided;
    } finally {
      clearTimeout(timer);
    }
  }

  ping(address: string, req: PingRequest, deadlineMs: number): Promise<PingReply> {
    return unaryWith(address, PING_PATH, controlCodecs.pingRequest.serialize(req), this.o.token, this.files, deadlineMs).then((b) =>
      controlCodecs.pingReply.deserialize(b),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const server = this.server;
    const done = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    // Graceful first so the last frames (an abort, our end-of-stream trailers) reach the neighbours.
    await Promise.all([...(this.client ? [this.client.close()] : []), ...[...this.conns].map((c) => c.close())]);
    await done;
  }
}

/** A trailers-only gRPC response carrying a non-OK status. */
function refuse(stream: RawH2Stream, r: Refusal): void {
  if (stream.closed || stream.localEnded) return;
  stream.respond(
    [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', String(r.code)], ['grpc-message', encodeURIComponent(r.details)]],
    true,
  );
}
