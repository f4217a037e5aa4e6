/**
 * The @grpc/grpc-js transport of GrpcRing (see transport.ts): server, Pull client and Ping client.
 * grpc-js copies every message on both ends and cannot raise HTTP/2's frame size; h2-transport.ts
 * is the faster alternative speaking the same protocol. Kept selectable (`transport: 'grpc-js'`).
 */
import * as grpc from '@grpc/grpc-js';
import { RingConnectError } from './errors.ts';
import { GrpcPeer } from './grpc-peer.ts';
import * as svc from './grpc-service.ts';
import { peerOptions, type CompiledRingOptions } from './ring-options.ts';
import { refusalText, TOKEN_METADATA_KEY, type PingReply, type PingRequest, type PullRequest } from './ring-protocol.ts';
import { hostPort, type PeerContext, type RingHandlers, type RingTransport } from './transport.ts';

export class GrpcJsTransport implements RingTransport {
  readonly peer: GrpcPeer | null;
  private readonly server: grpc.Server;
  private client: svc.RingClient | null = null;

  constructor(private readonly o: CompiledRingOptions, ctx: PeerContext) {
    this.peer =
      o.worldSize > 1
        ? new GrpcPeer(peerOptions(o, ctx))
        : null;
    this.server = new grpc.Server(svc.serverOptions(o.largeMessageBytes));
  }

  async listen(host: string, port: number, h: RingHandlers): Promise<number> {
    this.server.addService(svc.ringService, {
      pull: (call: grpc.ServerWritableStream<PullRequest, Uint8Array>) => {
        const refusal = h.pull(call.request, call.metadata.get(TOKEN_METADATA_KEY)[0]);
        if (refusal) return void call.emit('error', refusal);
        call.sendMetadata(new grpc.Metadata()); // tells the caller its stream is accepted
        this.peer!.attachRight(call);
        h.pullAttached();
      },
      ping: (call: grpc.ServerUnaryCall<PingRequest, PingReply>, cb: grpc.sendUnaryData<PingReply>) => {
        const r = h.ping(call.request, call.metadata.get(TOKEN_METADATA_KEY)[0]);
        if ('code' in r) cb(r);
        else cb(null, r);
      },
    });
    return new Promise<number>((resolve, reject) =>
      this.server.bindAsync(hostPort(host, port), svc.serverCredentials(this.o.tls), (err, p) => (err ? reject(err) : resolve(p))),
    ).catch((err: unknown) => {
      this.server.forceShutdown();
      throw err;
    });
  }

  async pullFromLeft(address: string, req: PullRequest, deadline: number): Promise<void> {
    const o = this.o;
    const peer = this.peer!;
    const left = peer.leftRank;
    this.client = svc.newRingClient(address, svc.channelCredentials(o.tls), svc.clientChannelOptions(o.largeMessageBytes, o.windowBytes, o.tls));
    const client = this.client;
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(deadline, (err) =>
        err ? reject(new RingConnectError(left, address, `not reachable within ${o.connectTimeoutMs} ms`, { cause: err })) : resolve(),
      ),
    );
    const call = client.pull(req, svc.tokenMetadata(o.token));
    const accepted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RingConnectError(left, address, `did not accept our Pull stream within ${o.connectTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      call.once('metadata', () => (clearTimeout(timer), resolve()));
      call.once('error', (e: grpc.ServiceError) => {
        clearTimeout(timer);
        reject(new RingConnectError(left, address, refusalText(e.code, e.details), { cause: e }));
      });
    });
    peer.attachLeft(call); // listen for data at once: the left neighbour may start its first collective early
    await accepted;
  }

  ping(address: string, req: PingRequest, deadlineMs: number): Promise<PingReply> {
    const o = this.o;
    const client = svc.newRingClient(address, svc.channelCredentials(o.tls), svc.clientChannelOptions(1024, 65_536, o.tls));
    return new Promise<PingReply>((resolve, reject) =>
      client.ping(req, svc.tokenMetadata(o.token), { deadline: Date.now() + deadlineMs }, (err, reply) =>
        err || !reply ? reject(err ?? new Error('empty ping reply')) : resolve(reply),
      ),
    ).finally(() => client.close());
  }

  async close(): Promise<void> {
    this.client?.close();
    await new Promise<void>((resolve) => {
      // Graceful first so the last frames (an abort, our end-of-stream) reach the neighbour.
      const force = setTimeout(() => this.server.forceShutdown(), 500);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
