/**
 * ringtune.v1.Ring (proto/ringtune/v1/ring.proto) as every transport speaks it, with no transport in
 * it: method paths, the token header, the control messages and their protobufjs serializers, and the
 * gRPC status codes. grpc-service.ts binds these to @grpc/grpc-js; h2-transport.ts writes them on
 * node:http2 itself. Nothing here loads @grpc/grpc-js.
 *
 * RingChunk uses the hand framing in wire.ts (the hot path); the small control messages
 * (PullRequest, PingRequest, PingReply) are encoded by protobufjs from the .proto file itself, so
 * the .proto stays the single wire contract.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const RING_PROTO_PATH = fileURLToPath(new URL('../../proto/ringtune/v1/ring.proto', import.meta.url));
export const PULL_PATH = '/ringtune.v1.Ring/Pull';
export const PING_PATH = '/ringtune.v1.Ring/Ping';
/** gRPC metadata (an HTTP/2 header) carrying the job's shared token on every call. */
export const TOKEN_METADATA_KEY = 'x-ringtune-token';

const root = protobuf.loadSync(RING_PROTO_PATH);
/** protobufjs's RingChunk, the reference tests/collective/wire.test.ts holds wire.ts to. */
export const RingChunkType = root.lookupType('ringtune.v1.RingChunk');

/**
 * `epoch` is the ring epoch (absent = 0): the coordinator re-forms the ring after a loss or a join with
 * a new epoch, and a ring refuses (and counts as staleEpoch) a caller from any other epoch, so a rank
 * left over from the previous ring can never attach to or probe the new one.
 */
export interface PullRequest {
  jobId: string;
  rank: number;
  worldSize: number;
  epoch?: number;
  /**
   * A striped link (stripes.ts): which of its `connections` this Pull is. Absent (a stock grpc-js peer,
   * an older ringtune) means stripe 0 of 1; a ring refuses a caller whose count differs from its own.
   */
  stripe?: number;
  connections?: number;
}
export interface PingRequest {
  jobId: string;
  rank: number;
  epoch?: number;
}
export interface PingReply {
  jobId: string;
  rank: number;
  step: number;
  inCollective: boolean;
}

export interface ControlCodec<T> {
  serialize(value: T): Buffer;
  deserialize(bytes: Buffer): T;
}

function codec<T extends object>(type: protobuf.Type): ControlCodec<T> {
  return {
    serialize: (value: T): Buffer => Buffer.from(type.encode(type.fromObject(value)).finish()),
    deserialize: (bytes: Buffer): T => type.toObject(type.decode(bytes), { longs: Number, defaults: true }) as T,
  };
}

/** The control messages' serializers (grpc-js's service definition and the h2 transport use the same). */
export const controlCodecs = {
  pullRequest: codec<PullRequest>(root.lookupType('ringtune.v1.PullRequest')),
  pingRequest: codec<PingRequest>(root.lookupType('ringtune.v1.PingRequest')),
  pingReply: codec<PingReply>(root.lookupType('ringtune.v1.PingReply')),
};

/**
 * gRPC status codes (grpc/doc/statuscodes.md): the numbers in `grpc-status`, equal to grpc-js's
 * `grpc.status` (tests/collective/ring-protocol.test.ts checks every one).
 */
export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10,
  OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

/** "UNAUTHENTICATED: details (hint)" for a refused Pull. */
export function refusalText(code: number, details: string): string {
  const hint = code === GrpcStatus.UNAUTHENTICATED ? ' (token mismatch: every rank of a job needs the same token)' : '';
  return `${STATUS_NAMES.get(code) ?? code}: ${details}${hint}`;
}

/** Constant-time comparison of a received token (any header value) with the job's (hashed first so lengths do not leak either). */
export function tokenMatches(got: unknown, token: string): boolean {
  if (typeof got !== 'string') return false;
  const a = createHash('sha256').update(got).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
