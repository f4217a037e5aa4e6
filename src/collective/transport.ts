/**
 * What GrpcRing needs from a transport. Two implementations speak the same gRPC wire protocol
 * (ring.proto over HTTP/2) and interoperate: grpc-js-transport.ts (@grpc/grpc-js) and
 * h2-transport.ts (node:http2 directly, with buffers we own). The ring logic (states, token / job /
 * rank checks, timeouts and liveness probes) stays in grpc-ring.ts and is shared.
 */
import type { CollectiveWhere } from './errors.ts';
import type { RejectCounters } from './grpc-peer.ts';
import type { PingReply, PingRequest, PullRequest } from './grpc-service.ts';
import type { RingPeer } from './ring-allreduce.ts';

export type RingTransportName = 'grpc-js' | 'h2';

/** A refused call: a gRPC status code (grpc.status) and its details. */
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
  activeStep: number | null;
  lastStep: number;
  readonly broken: boolean;
  checkUsable(): void;
  close(): void;
}

/** Context a transport gives its peer. */
export interface PeerContext {
  readonly rejected: RejectCounters;
  readonly where: () => CollectiveWhere;
  readonly onFailure: (err: Error) => void;
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
