/**
 * The gRPC side of ring.proto: the `ringtune.v1.Ring` service definition for @grpc/grpc-js, its
 * serializers, credentials (insecure, TLS, mutual TLS) and the shared-token check.
 *
 * RingChunk uses the hand framing in wire.ts (the hot path); the small control messages
 * (PullRequest, PingRequest, PingReply) are encoded by protobufjs from the .proto file itself, so
 * the .proto stays the single wire contract.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { decodeChunk, type DecodedChunk } from './wire.ts';

export const RING_PROTO_PATH = fileURLToPath(new URL('../../proto/ringtune/v1/ring.proto', import.meta.url));
export const TOKEN_METADATA_KEY = 'x-ringtune-token';

const root = protobuf.loadSync(RING_PROTO_PATH);
export const RingChunkType = root.lookupType('ringtune.v1.RingChunk');
const PullRequestType = root.lookupType('ringtune.v1.PullRequest');
const PingRequestType = root.lookupType('ringtune.v1.PingRequest');
const PingReplyType = root.lookupType('ringtune.v1.PingReply');

export interface PullRequest {
  jobId: string;
  rank: number;
  worldSize: number;
}
export interface PingRequest {
  jobId: string;
  rank: number;
}
export interface PingReply {
  jobId: string;
  rank: number;
  step: number;
  inCollective: boolean;
}

function codec<T extends object>(type: protobuf.Type) {
  return {
    serialize: (value: T): Buffer => Buffer.from(type.encode(type.fromObject(value)).finish()),
    deserialize: (bytes: Buffer): T =>
      type.toObject(type.decode(bytes), { longs: Number, defaults: true }) as T,
  };
}
const pullReq = codec<PullRequest>(PullRequestType);
const pingReq = codec<PingRequest>(PingRequestType);
const pingRep = codec<PingReply>(PingReplyType);
/** The control messages' serializers, for transports other than grpc-js (h2-transport.ts). */
export const controlCodecs = { pullRequest: pullReq, pingRequest: pingReq, pingReply: pingRep };

/** RingChunk bytes from wire.ts go out as they are: a Buffer view, no copy. */
function chunkSerialize(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export const ringService = {
  pull: {
    path: '/ringtune.v1.Ring/Pull',
    requestStream: false,
    responseStream: true,
    requestSerialize: pullReq.serialize,
    requestDeserialize: pullReq.deserialize,
    responseSerialize: chunkSerialize,
    responseDeserialize: (bytes: Buffer): DecodedChunk => decodeChunk(bytes),
  },
  ping: {
    path: '/ringtune.v1.Ring/Ping',
    requestStream: false,
    responseStream: false,
    requestSerialize: pingReq.serialize,
    requestDeserialize: pingReq.deserialize,
    responseSerialize: pingRep.serialize,
    responseDeserialize: pingRep.deserialize,
  },
} satisfies grpc.ServiceDefinition;

/** Client stub type for ringService. */
export interface RingClient extends grpc.Client {
  pull(req: PullRequest, md: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<DecodedChunk>;
  ping(req: PingRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<PingReply>): grpc.ClientUnaryCall;
}

const RingClientCtor = grpc.makeGenericClientConstructor(ringService, 'Ring');

export function newRingClient(address: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions): RingClient {
  return new RingClientCtor(address, creds, options) as unknown as RingClient;
}

/** Certificate files (PEM). `caPath` verifies the other side; `mutual` makes the server demand a client cert. */
export interface RingTlsOptions {
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
  readonly mutual?: boolean;
  /** Name to verify in the server certificate when it differs from the dialled host. */
  readonly serverNameOverride?: string;
}

export function serverCredentials(tls: RingTlsOptions | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const pair = { cert_chain: readFileSync(tls.certPath), private_key: readFileSync(tls.keyPath) };
  return grpc.ServerCredentials.createSsl(readFileSync(tls.caPath), [pair], tls.mutual === true);
}

export function channelCredentials(tls: RingTlsOptions | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const ca = readFileSync(tls.caPath);
  if (!tls.mutual) return grpc.credentials.createSsl(ca);
  return grpc.credentials.createSsl(ca, readFileSync(tls.keyPath), readFileSync(tls.certPath));
}

/** Metadata carrying the job token. */
export function tokenMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(TOKEN_METADATA_KEY, token);
  return md;
}

/** Constant-time token comparison (hashes first so lengths do not leak either). */
export function hasToken(md: grpc.Metadata, token: string): boolean {
  return tokenMatches(md.get(TOKEN_METADATA_KEY)[0], token);
}

/** Constant-time comparison of a received token (any header value) with the job's. */
export function tokenMatches(got: unknown, token: string): boolean {
  if (typeof got !== 'string') return false;
  const a = createHash('sha256').update(got).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/**
 * Channel options for the Pull client. The flow-control window is what lets the left neighbour keep
 * `window` bytes in flight instead of HTTP/2's default 64 KiB (which caps loopback far below the
 * socket); it is also the bound on what one link buffers. Each ring gets its own subchannels so
 * closing one ring never touches another's connection (tests run many rings in one process).
 */
export function clientChannelOptions(messageBytes: number, windowBytes: number, tls?: RingTlsOptions): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': messageBytes + 64 * 1024,
    'grpc.max_send_message_length': 64 * 1024,
    'grpc-node.flow_control_window': windowBytes,
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
    ...(tls?.serverNameOverride ? { 'grpc.ssl_target_name_override': tls.serverNameOverride } : {}),
  };
}

export function serverOptions(messageBytes: number): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': 64 * 1024,
    'grpc.max_send_message_length': messageBytes + 64 * 1024,
  };
}
