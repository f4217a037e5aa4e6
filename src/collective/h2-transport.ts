/**
 * The node:http2 transport of GrpcRing (see transport.ts): gRPC over HTTP/2 written by hand, so the
 * ring controls its buffers (h2-peer.ts) and HTTP/2's settings. It is real gRPC and interoperates with
 * grpc-js in both directions (tests/collective/h2-interop.test.ts): `POST /ringtune.v1.Ring/Pull|Ping`,
 * `content-type: application/grpc`, `te: trailers`, 5-byte length-prefixed messages, status in
 * `grpc-status` / percent-encoded `grpc-message` trailers (or trailers-only responses for refusals),
 * the job token in `x-ringtune-token`.
 *
 * HTTP/2 settings on both ends: SETTINGS_MAX_FRAME_SIZE 16 MiB - 1 (grpc-js keeps 16 KiB),
 * SETTINGS_INITIAL_WINDOW_SIZE = the ring's window (what a sender may have in flight on a stream) and
 * the session window raised to match with setLocalWindowSize; maxSessionMemory raised so a full
 * window never trips node's ENHANCE_YOUR_CALM guard. The receiver dials (as with grpc-js) and reads.
 */
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { RingConnectError } from './errors.ts';
import { decodeGrpcMessage, framed, unframe } from './grpc-framing.ts';
import { H2Peer } from './h2-peer.ts';
import { peerOptions, type CompiledRingOptions, type RingTlsOptions } from './ring-options.ts';
import {
  controlCodecs, GrpcStatus as Status, PING_PATH, PULL_PATH, refusalText, TOKEN_METADATA_KEY,
  type PingReply, type PingRequest, type PullRequest,
} from './ring-protocol.ts';
import type { PeerContext, Refusal, RingHandlers, RingTransport } from './transport.ts';

/** Largest SETTINGS_MAX_FRAME_SIZE HTTP/2 allows (2^24 - 1). */
export const MAX_FRAME_SIZE = (1 << 24) - 1;
/** Requests (PullRequest, PingRequest) are tiny; anything larger is refused. */
const MAX_REQUEST_BYTES = 64 * 1024;

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

function settings(windowBytes: number): http2.Settings {
  return { maxFrameSize: MAX_FRAME_SIZE, initialWindowSize: Math.min(windowBytes, 2 ** 31 - 1), enablePush: false };
}

/** A gRPC error from the h2 client: `code` is the grpc-status. */
export class H2CallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC status ${code}: ${details}`);
  }
}

/**
 * Client options for http2.connect: plaintext h2c with prior knowledge, or TLS with ALPN h2. We make
 * the socket ourselves to turn Nagle off (node's http2 sockets cannot be touched once wrapped), so a
 * message's last DATA frame never waits for the peer's delayed ACK.
 */
function clientOptions(address: string, files: TlsFiles | undefined, windowBytes: number): http2.SecureClientSessionOptions {
  const url = new URL(`http://${address}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port);
  const createConnection = (): Duplex => {
    if (!files) return net.connect({ host, port, noDelay: true });
    const override = files.serverNameOverride;
    const socket = tls.connect({
      host, port, ALPNProtocols: ['h2'], ca: files.ca,
      ...(files.mutual ? { cert: files.cert, key: files.key } : {}),
      // SNI only for names (RFC 6066); the certificate is checked against the override or the dialled host.
      ...(override ? { servername: override } : net.isIP(host) ? {} : { servername: host }),
      checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(override ?? host, cert),
    });
    socket.setNoDelay(true);
    return socket;
  };
  return { settings: settings(windowBytes), maxSessionMemory: 1024, createConnection };
}

function authority(address: string, files: TlsFiles | undefined): string {
  return `${files ? 'https' : 'http'}://${address}`;
}

/**
 * One connection attempt; resolves once the HTTP/2 session is up (TLS handshake included), rejects on an
 * error or after timeoutMs (an unreachable host would otherwise hang for the kernel's SYN timeout).
 */
function connectOnce(address: string, files: TlsFiles | undefined, windowBytes: number, timeoutMs: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority(address, files), clientOptions(address, files, windowBytes));
    const timer = setTimeout(() => onError(new Error(`no connection within ${Math.round(timeoutMs)} ms`)), Math.max(1, timeoutMs));
    const onError = (e: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(e);
    };
    session.once('error', onError);
    session.once('connect', () => {
      clearTimeout(timer);
      session.off('error', onError);
      session.on('error', () => {}); // reported through the streams
      try {
        session.setLocalWindowSize(Math.min(2 * windowBytes, 2 ** 31 - 1));
      } catch {
        // only an optimisation
      }
      resolve(session);
    });
  });
}

function requestHeaders(path: string, address: string, token: string, files: TlsFiles | undefined, deadlineMs?: number): http2.OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': path,
    ':scheme': files ? 'https' : 'http',
    ':authority': address,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-accept-encoding': 'identity',
    'user-agent': 'ringtune-h2/1',
    ...(deadlineMs !== undefined ? { 'grpc-timeout': `${Math.max(1, Math.ceil(deadlineMs))}m` } : {}),
    [TOKEN_METADATA_KEY]: token,
  };
}

/**
 * A unary gRPC call over node:http2 on a fresh connection (closed afterwards). Rejects with
 * H2CallError for a non-OK status, and with DEADLINE_EXCEEDED after deadlineMs.
 */
export function h2Unary(address: string, path: string, body: Uint8Array, token: string, tlsOptions: RingTlsOptions | undefined, deadlineMs: number): Promise<Buffer> {
  const files = loadTls(tlsOptions);
  return h2UnaryWith(address, path, body, token, files, deadlineMs);
}

function h2UnaryWith(address: string, path: string, body: Uint8Array, token: string, files: TlsFiles | undefined, deadlineMs: number): Promise<Buffer> {
  let session: http2.ClientHttp2Session | null = null;
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const call = new Promise<Buffer>((resolve, reject) => {
    timer = setTimeout(() => reject(new H2CallError(Status.DEADLINE_EXCEEDED, `no answer within ${deadlineMs} ms`)), deadlineMs);
    connectOnce(address, files, 65_535, deadlineMs)
      .then((s) => {
        session = s;
        if (settled) return void s.destroy(); // the deadline passed while connecting
        const stream = s.request(requestHeaders(path, address, token, files, deadlineMs));
        const chunks: Buffer[] = [];
        let size = 0;
        let status: string | undefined;
        let details = '';
        const statusOf = (h: http2.IncomingHttpHeaders) => {
          if (h['grpc-status'] !== undefined) {
            status = String(h['grpc-status']);
            details = decodeGrpcMessage(h['grpc-message']);
          }
        };
        stream.on('response', statusOf);
        stream.on('trailers', statusOf);
        stream.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_REQUEST_BYTES) chunks.push(c);
        });
        stream.on('error', (e: Error) => reject(new H2CallError(Status.UNAVAILABLE, e.message)));
        stream.on('close', () => {
          if (status === undefined) return reject(new H2CallError(Status.UNAVAILABLE, `stream closed without a gRPC status (HTTP/2 code ${stream.rstCode})`));
          if (status !== '0') return reject(new H2CallError(Number(status), details));
          const msg = unframe(chunks);
          if (!msg) return reject(new H2CallError(Status.INTERNAL, 'malformed response message'));
          resolve(msg);
        });
        stream.end(framed(body));
      })
      .catch((e: Error) => reject(new H2CallError(Status.UNAVAILABLE, e.message)));
  });
  return call.finally(() => {
    settled = true;
    clearTimeout(timer);
    (session as http2.ClientHttp2Session | null)?.destroy();
  });
}

/** Ping a ring server over node:http2 (tests use it against grpc-js servers too). */
export async function h2Ping(address: string, req: PingRequest, token: string, tlsOptions: RingTlsOptions | undefined, deadlineMs: number): Promise<PingReply> {
  const reply = await h2Unary(address, PING_PATH, controlCodecs.pingRequest.serialize(req), token, tlsOptions, deadlineMs);
  return controlCodecs.pingReply.deserialize(reply);
}

export class H2Transport implements RingTransport {
  readonly peer: H2Peer | null;
  private readonly files: TlsFiles | undefined;
  private server: http2.Http2Server | http2.Http2SecureServer | null = null;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private client: http2.ClientHttp2Session | null = null;
  private closed = false;

  constructor(private readonly o: CompiledRingOptions, ctx: PeerContext) {
    this.files = loadTls(o.tls);
    this.peer =
      o.worldSize > 1
        ? new H2Peer(peerOptions(o, ctx))
        : null;
  }

  listen(host: string, port: number, h: RingHandlers): Promise<number> {
    const f = this.files;
    const common = { settings: settings(this.o.windowBytes), maxSessionMemory: 1024 };
    const server = f
      ? http2.createSecureServer({ ...common, key: f.key, cert: f.cert, ca: f.ca, requestCert: f.mutual, rejectUnauthorized: true })
      : http2.createServer(common);
    this.server = server;
    server.on('connection', (socket: net.Socket) => socket.setNoDelay(true)); // the raw TCP socket, TLS or not
    server.on('session', (s: http2.ServerHttp2Session) => {
      this.sessions.add(s);
      s.on('error', () => {}); // reported through the streams
      s.once('close', () => this.sessions.delete(s));
      if (this.closed) s.destroy();
    });
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers, h));
    return new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, h: RingHandlers): void {
    stream.on('error', () => {}); // a reset stream is handled by whoever owns it
    const ct = headers['content-type'];
    if (headers[':method'] !== 'POST' || typeof ct !== 'string' || !ct.startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'];
    if (path !== PULL_PATH && path !== PING_PATH) return refuse(stream, { code: Status.UNIMPLEMENTED, details: `unknown method ${path}` });
    const token = headers[TOKEN_METADATA_KEY];
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(c);
    });
    stream.once('end', () => {
      if (stream.closed || stream.destroyed) return;
      const body = size <= MAX_REQUEST_BYTES ? unframe(chunks) : null;
      if (!body) return refuse(stream, { code: Status.INTERNAL, details: 'malformed request message' });
      try {
        if (path === PULL_PATH) this.onPull(stream, controlCodecs.pullRequest.deserialize(body), token, h);
        else this.onPing(stream, controlCodecs.pingRequest.deserialize(body), token, h);
      } catch (e) {
        refuse(stream, { code: Status.INTERNAL, details: `cannot parse request: ${(e as Error).message}` });
      }
    });
  }

  private onPull(stream: http2.ServerHttp2Stream, req: PullRequest, token: unknown, h: RingHandlers): void {
    const refusal = h.pull(req, token);
    if (refusal) return refuse(stream, refusal);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    this.peer!.attachRight(stream);
    h.pullAttached();
  }

  private onPing(stream: http2.ServerHttp2Stream, req: PingRequest, token: unknown, h: RingHandlers): void {
    const r = h.ping(req, token);
    if ('code' in r) return refuse(stream, r);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(framed(controlCodecs.pingReply.serialize(r)));
  }

  async pullFromLeft(address: string, req: PullRequest, deadline: number): Promise<void> {
    const o = this.o;
    const peer = this.peer!;
    const left = peer.leftRank;
    let session: http2.ClientHttp2Session | null = null;
    let lastError: unknown;
    for (let wait = 50; !session; wait = Math.min(1000, wait * 2)) {
      if (this.closed) throw new RingConnectError(left, address, 'the ring was closed while connecting');
      try {
        session = await connectOnce(address, this.files, o.windowBytes, Math.max(1, deadline - Date.now()));
      } catch (e) {
        lastError = e;
        if (Date.now() >= deadline - 5) {
          throw new RingConnectError(left, address, `not reachable within ${o.connectTimeoutMs} ms (${(e as Error).message})`, { cause: lastError });
        }
        await new Promise((r) => setTimeout(r, Math.min(wait, deadline - Date.now())));
      }
    }
    this.client = session;
    if (this.closed) session.destroy();
    const stream = session.request(requestHeaders(PULL_PATH, address, o.token, this.files));
    const accepted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RingConnectError(left, address, `did not accept our Pull stream within ${o.connectTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      stream.once('response', (headers: http2.IncomingHttpHeaders) => {
        clearTimeout(timer);
        const status = headers['grpc-status'];
        if (Number(headers[':status']) !== 200) reject(new RingConnectError(left, address, `HTTP status ${headers[':status']}`));
        else if (status !== undefined && String(status) !== '0') {
          const details = decodeGrpcMessage(headers['grpc-message']);
          reject(new RingConnectError(left, address, refusalText(Number(status), details), { cause: new H2CallError(Number(status), details) }));
        } else resolve();
      });
      stream.once('close', () => {
        clearTimeout(timer);
        reject(new RingConnectError(left, address, `our Pull stream closed before it was accepted (HTTP/2 code ${stream.rstCode})`));
      });
    });
    peer.attachLeft(stream); // listen for data at once: the left neighbour may start its first collective early
    stream.end(framed(controlCodecs.pullRequest.serialize(req)));
    await accepted;
  }

  ping(address: string, req: PingRequest, deadlineMs: number): Promise<PingReply> {
    return h2UnaryWith(address, PING_PATH, controlCodecs.pingRequest.serialize(req), this.o.token, this.files, deadlineMs).then((b) =>
      controlCodecs.pingReply.deserialize(b),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const graceful = (s: http2.Http2Session) =>
      new Promise<void>((resolve) => {
        if (s.destroyed) return resolve();
        // close() waits for open streams; a session the peer already sent GOAWAY on is closing on its own.
        const force = setTimeout(() => s.destroy(), 500);
        s.once('close', () => {
          clearTimeout(force);
          resolve();
        });
        if (!s.closed) s.close();
      });
    const server = this.server;
    const done = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    // Graceful first so the last frames (an abort, our end-of-stream trailers) reach the neighbours.
    await Promise.all([...(this.client ? [graceful(this.client)] : []), ...[...this.sessions].map(graceful)]);
    await done;
  }
}

/** A trailers-only gRPC response carrying a non-OK status. */
function refuse(stream: http2.ServerHttp2Stream, r: Refusal): void {
  if (stream.closed || stream.destroyed || stream.headersSent) return;
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(r.code), 'grpc-message': encodeURIComponent(r.details) },
    { endStream: true },
  );
}
