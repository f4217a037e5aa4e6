/**
 * What GrpcRing needs from a transport, and what the transports share. Three implementations speak
 * the same gRPC wire protocol (ring.proto over HTTP/2, ring-protocol.ts) and interoperate:
 * grpc-js-transport.ts + grpc-peer.ts (@grpc/grpc-js), h2-transport.ts + h2-peer.ts (node:http2
 * directly, with buffers we own) and raw-h2-*.ts (our own HTTP/2 on net/tls sockets). The ring logic (states, token / job / rank checks, timeouts and
 * liveness probes) stays in grpc-ring.ts and is shared.
 *
 * Dependency rule (tests/collective/seams.test.ts): this file and the other neutral modules import no
 * transport; each transport imports only neutral modules, never another transport; grpc-ring.ts
 * alone composes them.
 */
import type { CollectiveWhere } from './errors.ts';
import type { RingPeer } from './ring-allreduce.ts';
import type { PingReply, PingRequest, PullRequest } from './ring-protocol.ts';

/** The implementations of the ring's gRPC protocol (ring-options.ts documents each). */
export const RING_TRANSPORTS = ['grpc-js', 'h2', 'raw-h2'] as const;
export type RingTransportName = (typeof RING_TRANSPORTS)[number];

/** Refused calls and dropped messages, by reason; one object per ring, shared by its server and peer. */
export interface RejectCounters {
  /** Messages or calls carrying another job id. */
  foreignJob: number;
  /** Messages of a collective that is already over. */
  staleStep: number;
  /** Messages or calls from a rank that is not our neighbour. */
  wrongSender: number;
  /** Calls without the job token (refused with UNAUTHENTICATED). */
  badToken: number;
}

/** A refused call: a gRPC status code (GrpcStatus) and its details. */
export interface Refusal {
  readonly code: number;
  readonly details: string;
}

/** The ring's side of the two RPCs; the transport decodes requests and encodes answers. */
export interface RingHandlers {
  /** Decides on a Pull call: a refusal, or null to accept it (the transport then attaches it to the peer). */
  pull(req: PullRequest, token: unknown): Refusal | null;
  /** Called once an accepted Pull is attached to the peer as its right stream. */
  pullAttached(): void;
  ping(req: PingRequest, token: unknown): Refusal | PingReply;
}

/** One rank's two links as the ring drives them (GrpcPeer, H2Peer). */
export interface TransportPeer extends RingPeer {
  readonly rejected: RejectCounters;
  readonly leftRank: number;
  readonly rightRank: number;
  readonly stats: { messagesSent: number; messagesReceived: number; alignCopies: number };
  /** The peer's lifecycle (peer-state.ts PeerState): every transport's peer owns one. */
  readonly state: PeerSteps;
  close(): void;
}

/** What the ring reads and sets of a peer's lifecycle (implemented by peer-state.ts PeerState). */
export interface PeerSteps {
  /** Step of the collective in progress, or null between collectives (set by GrpcRing). */
  activeStep: number | null;
  /** Step of the last collective that ended, -1 before the first (set by GrpcRing). */
  lastStep: number;
  readonly broken: boolean;
  checkUsable(): void;
}

/** Context the ring gives its transport's peer. */
export interface PeerContext {
  /** Shared with the ring's server, which counts refused calls in the same object. */
  readonly rejected: RejectCounters;
  /** Where the ring is now (step, round), for error messages. */
  readonly where: () => CollectiveWhere;
  /** Called once, with the first error; the ring is broken from then on. */
  readonly onFailure: (err: Error) => void;
}

/** What a peer (GrpcPeer, H2Peer) is built from: the ring's identity and limits plus its PeerContext. */
export interface PeerOptions extends PeerContext {
  readonly jobId: string;
  readonly rank: number;
  readonly worldSize: number;
  /** Largest number of values in one message (the receive scratch and send buffers are sized for it). */
  readonly maxElements: number;
  /** Send buffers per link: at most this many messages are queued on the sending side. */
  readonly inflight: number;
}

export interface RingTransport {
  /** null for a 1-rank ring. */
  readonly peer: TransportPeer | null;
  /** Starts serving ringtune.v1.Ring; resolves with the port bound. */
  listen(host: string, port: number, handlers: RingHandlers): Promise<number>;
  /**
   * Opens our Pull stream on the left neighbour (retrying until `deadline` while it is unreachable),
   * attaches it to the peer at once, and resolves when the neighbour accepted it. Rejects with
   * RingConnectError.
   */
  pullFromLeft(address: string, req: PullRequest, deadline: number): Promise<void>;
  /** One Ping call; rejects on any failure or after deadlineMs. */
  ping(address: string, req: PingRequest, deadlineMs: number): Promise<PingReply>;
  /** Closes client and server (graceful first, so the last frames reach the neighbours). */
  close(): Promise<void>;
}

/** "host:port", with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
