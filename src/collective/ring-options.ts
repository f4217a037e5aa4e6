/**
 * GrpcRing options: raw options -> defaults -> validation (all problems at once) -> CompiledRingOptions
 * with units in names. Nothing downstream re-reads the raw object.
 */
import { InputError } from '../errors.ts';
import type { CodecName } from './codecs.ts';
import type { ReduceOp } from './ring-allreduce.ts';
import { MAX_CONNECTIONS } from './stripes.ts';
import { RING_TRANSPORTS, type PeerContext, type PeerOptions, type RingTransportName } from './transport.ts';

/** Certificate files (PEM). `caPath` verifies the other side; `mutual` makes the server demand a client cert. */
export interface RingTlsOptions {
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
  readonly mutual?: boolean;
  /** Name to verify in the server certificate when it differs from the dialled host. */
  readonly serverNameOverride?: string;
}

export interface GrpcRingOptions {
  jobId: string;
  rank: number;
  worldSize: number;
  /** Shared secret of the job; every call carries it, calls without it are refused. */
  token: string;
  /** Interface to bind; default 127.0.0.1. */
  listenHost?: string;
  /** 0 (default) picks a free port; `ring.address` tells which. */
  listenPort?: number;
  /** Host other ranks should dial, when it differs from listenHost (e.g. 0.0.0.0 -> pod IP). */
  advertiseHost?: string;
  tls?: RingTlsOptions;
  /** fp32 payload bytes per message; large chunks are split into messages of this size. */
  messageBytes?: number;
  /**
   * Upper bound of the message size for large collectives (default 4 MiB when messageBytes is left at
   * its default, else messageBytes; = messageBytes turns the growth off): a collective whose chunks are
   * long sends them in messages of ceil(chunk / 4), between
   * messageBytes and this (messageElements()). Fewer, larger messages cost less CPU per byte
   * (docs/collective.md, "Session 6"). Every rank of a ring must use the same value.
   */
  largeMessageBytes?: number;
  /** Messages per link in flight (send pool size); also sets the HTTP/2 window. */
  inflightMessages?: number;
  /** How long connect() waits for both neighbours. */
  connectTimeoutMs?: number;
  /**
   * Implementation of the gRPC protocol: 'raw-h2' (default; our own HTTP/2 on net/tls sockets: large DATA frames, reads into reused buffers,
   * raw-h2-transport.ts), 'h2' (node:http2 with reused buffers, h2-transport.ts) or 'grpc-js'
   * (@grpc/grpc-js). All speak the same wire protocol and
   * interoperate in one ring.
   */
  transport?: RingTransportName;
  /**
   * TCP connections per ring link (default 1; job YAML cluster.ring_connections). K > 1 stripes every
   * collective over K rings, stripe k in its own thread on port listenPort + k (stripes.ts), so K cores
   * move bytes; results are bit-identical to K = 1. Every rank of a ring must use the same K.
   */
  connections?: number;
}

export interface CompiledRingOptions {
  readonly jobId: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly token: string;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly advertiseHost: string;
  readonly tls: RingTlsOptions | undefined;
  /** Largest message in values (largeMessageBytes / 4): what buffers and receive limits are sized for. */
  readonly maxElementsPerMessage: number;
  /** Message size of small collectives in values (messageBytes / 4). */
  readonly minElementsPerMessage: number;
  readonly messageBytes: number;
  readonly largeMessageBytes: number;
  readonly inflightMessages: number;
  readonly windowBytes: number;
  readonly connectTimeoutMs: number;
  readonly transport: RingTransportName;
  /** Connections (stripes) per link, 1..MAX_CONNECTIONS. */
  readonly connections: number;
}

/** Defaults measured with `npm run bench:allreduce` on the 2-core reference machine (docs/collective.md). */
export const RING_DEFAULTS = {
  listenHost: '127.0.0.1',
  listenPort: 0,
  messageBytes: 1 << 20,
  largeMessageBytes: 4 << 20,
  inflightMessages: 4,
  connectTimeoutMs: 30_000,
  transport: 'raw-h2' as RingTransportName,
  connections: 1,
} as const;

export function compileRingOptions(raw: GrpcRingOptions): CompiledRingOptions {
  const problems: string[] = [];
  const int = (name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${name}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    }
  };
  if (typeof raw.jobId !== 'string' || raw.jobId.length === 0 || raw.jobId.length > 256) {
    problems.push('jobId: expected a non-empty string of at most 256 characters');
  }
  if (typeof raw.token !== 'string' || raw.token.length === 0) problems.push('token: expected a non-empty string');
  int('worldSize', raw.worldSize, 1, 65_536);
  int('rank', raw.rank, 0, (raw.worldSize ?? 1) - 1);
  const listenPort = raw.listenPort ?? RING_DEFAULTS.listenPort;
  int('listenPort', listenPort, 0, 65_535);
  const messageBytes = raw.messageBytes ?? RING_DEFAULTS.messageBytes;
  int('messageBytes', messageBytes, 4, 64 << 20);
  if (messageBytes % 4 !== 0) problems.push(`messageBytes: must be a multiple of 4, got ${messageBytes}`);
  // Default: 4 MiB with the default messageBytes; a ring that sets its messageBytes keeps that size
  // unless it also sets largeMessageBytes.
  const largeMessageBytes = raw.largeMessageBytes ?? (raw.messageBytes === undefined ? RING_DEFAULTS.largeMessageBytes : messageBytes);
  int('largeMessageBytes', largeMessageBytes, messageBytes, 64 << 20);
  if (largeMessageBytes % 4 !== 0) problems.push(`largeMessageBytes: must be a multiple of 4, got ${largeMessageBytes}`);
  const inflightMessages = raw.inflightMessages ?? RING_DEFAULTS.inflightMessages;
  int('inflightMessages', inflightMessages, 1, 64);
  const connectTimeoutMs = raw.connectTimeoutMs ?? RING_DEFAULTS.connectTimeoutMs;
  int('connectTimeoutMs', connectTimeoutMs, 1);
  const connections = raw.connections ?? RING_DEFAULTS.connections;
  int('connections (cluster.ring_connections)', connections, 1, MAX_CONNECTIONS);
  if (connections > 1 && listenPort > 65_535 - (connections - 1)) problems.push(`connections: ${connections} stripes need ports ${listenPort}..${listenPort + connections - 1}`);
  const transport = raw.transport ?? RING_DEFAULTS.transport;
  if (!(RING_TRANSPORTS as readonly string[]).includes(transport)) {
    problems.push(`transport: expected one of ${RING_TRANSPORTS.join(', ')}, got ${JSON.stringify(transport)}`);
  }
  if (raw.tls && !(raw.tls.certPath && raw.tls.keyPath && raw.tls.caPath)) {
    problems.push('tls: certPath, keyPath and caPath are all required');
  }
  if (problems.length > 0) throw new InputError(`invalid ring options:\n  ${problems.join('\n  ')}`);
  const listenHost = raw.listenHost ?? RING_DEFAULTS.listenHost;
  return {
    jobId: raw.jobId,
    rank: raw.rank,
    worldSize: raw.worldSize,
    token: raw.token,
    listenHost,
    listenPort,
    advertiseHost: raw.advertiseHost ?? listenHost,
    tls: raw.tls,
    maxElementsPerMessage: largeMessageBytes / 4,
    minElementsPerMessage: messageBytes / 4,
    messageBytes,
    largeMessageBytes,
    inflightMessages,
    // Window = what the sender may have in flight; a little above the pool so the pool is the limit.
    windowBytes: Math.max(64 * 1024, (inflightMessages + 1) * (largeMessageBytes + 1024)),
    connectTimeoutMs,
    transport,
    connections,
  };
}

/**
 * Environment for worker processes that run a ring (set by whoever spawns them; glibc reads it at
 * process start). grpc-js copies every message into a fresh Buffer on both ends (its frame prefix on
 * send, its reassembly on receive), which we cannot reuse from outside. With glibc's defaults those
 * buffers are mmapped or trimmed back to the OS after every GC and each 4 KiB page faults again on
 * first touch (~15 us per page here, notes/machine-perf.md). These settings keep freed memory in the
 * heap for reuse: measured 0.3 instead of 12-48 page faults per 512 KiB buffer, and 3-20x fewer faults
 * per 64 MiB all-reduce (bench/allreduce.ts --malloc default|tuned; docs/collective.md).
 */
export const RING_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 << 20),
  MALLOC_TRIM_THRESHOLD_: String(1 << 30),
  MALLOC_TOP_PAD_: String(64 << 20),
};

export interface AllReduceOptions {
  /** Collective sequence number: strictly increasing per ring, the same on every rank. */
  step: number;
  op?: ReduceOp;
  codec?: CodecName;
  /** Deadline for the whole collective; on expiry every rank fails naming the rank it misses. */
  timeoutMs?: number;
  /**
   * The last `exactTail` values of the buffer (default 0) are summed exactly as the fp32 codec sums them,
   * bit for bit, whatever `codec`: they travel in fp32 messages of their own (ring-allreduce.ts). A
   * training step's loss sum, token count and stop votes. Every rank must pass the same value.
   */
  exactTail?: number;
}

export const ALL_REDUCE_DEFAULTS = { op: 'sum', codec: 'fp32', timeoutMs: 60_000 } as const;

/**
 * What every transport's peer is built from: the ring's identity and limits plus its context.
 * `maxMessageBytes` is the largest RingChunk a peer accepts: a full message's payload plus room for its header.
 */
export function peerOptions(o: CompiledRingOptions, ctx: PeerContext): PeerOptions & { maxMessageBytes: number } {
  return {
    jobId: o.jobId, rank: o.rank, worldSize: o.worldSize, maxElements: o.maxElementsPerMessage,
    inflight: o.inflightMessages, rejected: ctx.rejected, where: ctx.where, onFailure: ctx.onFailure,
    maxMessageBytes: o.largeMessageBytes + 64 * 1024,
  };
}

/** Messages per chunk a large collective aims for: enough to pipeline rounds, few enough to be cheap. */
export const PARTS_PER_CHUNK = 4;

/**
 * Values per message for a collective of `length` values on `worldSize` ranks: ceil(chunk / 4) within
 * [minElementsPerMessage, maxElementsPerMessage]. A function of the ring's options and the buffer only,
 * so every rank cuts the same messages. With the defaults: 1 MiB messages up to 4 MiB chunks (e.g. 16 MiB
 * at N = 4), growing to 4 MiB from 16 MiB chunks up (64 MiB at N = 4, 32 MiB at N = 2).
 */
export function messageElements(o: Pick<CompiledRingOptions, 'minElementsPerMessage' | 'maxElementsPerMessage'>, length: number, worldSize: number): number {
  const chunk = Math.ceil(length / worldSize);
  return Math.min(o.maxElementsPerMessage, Math.max(o.minElementsPerMessage, Math.ceil(chunk / PARTS_PER_CHUNK)));
}
