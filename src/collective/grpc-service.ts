/**
 * ring.proto bound to @grpc/grpc-js: the `ringtune.v1.Ring` service definition with its
 * serializers, the client stub, credentials (insecure, TLS, mutual TLS), the token metadata and
 * channel / server options. The protocol itself (paths, messages, token header, status codes) is in
 * ring-protocol.ts, which the h2 transport uses without loading grpc-js.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { controlCodecs, PING_PATH, PULL_PATH, TOKEN_METADATA_KEY, type PingReply, type PingRequest, type PullRequest } from './ring-protocol.ts';
import type { RingTlsOptions } from './ring-options.ts';
import { decodeChunk, type DecodedChunk } from './wire.ts';

const { pullRequest: pullReq, pingRequest: pingReq, pingReply: pingRep } = controlCodecs;

/** RingChunk bytes from wire.ts go out as they are: a Buffer view, no copy. */
function chunkSerialize(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export const ringService = {
  pull: {
    path: PULL_PATH,
    requestStream: false,
    responseStream: true,
    requestSerialize: pullReq.serialize,
    requestDeserialize: pullReq.deserialize,
    responseSerialize: chunkSerialize,
    responseDeserialize: (bytes: Buffer): DecodedChunk => decodeChunk(bytes),
  },
  ping: {
    path: PING_PATH,
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
