/**
 * GrpcRing: one rank's end of the ring all-reduce over gRPC (the worker's API).
 *
 *   const ring = await GrpcRing.create({ jobId, rank, worldSize, token, listenPort: 0 });
 *   publish(ring.address);                      // e.g. to the coordinator
 *   await ring.connect(addressesInRankOrder);   // dials the left neighbour, waits for the right
 *   await ring.allReduce(grads, { step, op: 'sum', codec: 'bf16', timeoutMs: 30_000 });
 *   await ring.close();
 *
 * Lifecycle: 'listening' -> connect() -> 'connected' -> (error) 'broken' -> close() -> 'closed'.
 * A broken ring stays broken: every later allReduce throws the first error (PeerLostError,
 * CollectiveTimeoutError, ...), and the coordinator re-forms a new ring from the survivors.
 *
 * Transport (`transport` option, transport.ts): 'raw-h2' (default; raw-h2-*.ts, gRPC on our own HTTP/2
 * over net/tls sockets), 'h2' (h2-transport.ts + h2-peer.ts, gRPC written on node:http2 with buffers
 * allocated once) or 'grpc-js' (grpc-js-transport.ts + grpc-peer.ts). All speak the same gRPC protocol
 * and can be mixed in one ring; this class holds everything else
 * (states, token / job / rank checks, timeouts, liveness probes), shared by both.
 *
 * Striping (`connections` K > 1, stripes.ts): this ring is stripe 0 and starts stripes 1..K-1 in
 * threads (stripe-group.ts) on the next K-1 ports; each stripe is a ring of its own over its slice of
 * every chunk, so results are the bits of K = 1. The first stripe to fail breaks them all.
 *
 * Failure detection: a dead peer's sockets close, so both its neighbours see their stream fail at
 * once and send an abort naming it down the ring (peer-state.ts). A peer that hangs with its socket
 * open is caught by the per-collective timeout: at timeoutMs - probe window every rank pings all
 * others and, at timeoutMs, fails naming the nearest upstream rank that did not answer.
 */
import { InputError } from '../errors.ts';
import { codecs } from './codecs.ts';
import { CollectiveTimeoutError, RingClosedError, RingConnectError, RingProtocolError, type CollectiveWhere } from './errors.ts';
import { allReduceBytesPerRank, ringAllReduce, ringBroadcast, type RingPeer } from './ring-allreduce.ts';
import { StripeGroup } from './stripe-group.ts';
import type { StripeThread } from './stripe-thread.ts';
import { rangesLength, stripeAddress, stripeChunkRanges, stripeRange } from './stripes.ts';
import { ALL_REDUCE_DEFAULTS, compileRingOptions, messageElements, type AllReduceOptions, type CompiledRingOptions, type GrpcRingOptions } from './ring-options.ts';
import { GrpcStatus, tokenMatches, type PingReply, type PingRequest, type PullRequest } from './ring-protocol.ts';
import { hostPort, type PeerContext, type Refusal, type RejectCounters, type RingTransport, type RingTransportName, type TransportPeer } from './transport.ts';

export type RingState = 'listening' | 'connecting' | 'connected' | 'broken' | 'closed';

/**
 * GrpcRingOptions plus the ring epoch (default 0). Elastic runs (docs/reliability.md) build a new ring
 * per epoch; every Pull and Ping carries it and a caller of another epoch is refused (staleEpoch).
 */
export type EpochRingOptions = GrpcRingOptions & { epoch?: number };

/**
 * What a stripe thread (stripe-thread-main.ts) adds: which stripe of `connections` this ring is, and a
 * hook told the first error that breaks it. Callers leave both out (stripe 0, the one that starts the rest).
 */
export type StripeRingOptions = EpochRingOptions & { stripe?: number; onBroken?: (err: Error) => void };

/** The transports' refusal counters plus the ring's own: callers of another ring epoch. */
export type RingRejectCounters = RejectCounters & { staleEpoch: number };

type TransportClass = new (o: CompiledRingOptions, ctx: PeerContext) => RingTransport;

/**
 * Each transport loaded when a ring first asks for it: @grpc/grpc-js alone takes ~1.4 s to load on this
 * machine under load, and every stripe thread of a striped ring loads the ring afresh.
 */
const TRANSPORT_CLASSES: Record<RingTransportName, () => Promise<TransportClass>> = {
  'raw-h2': async () => (await import('./raw-h2-transport.ts')).RawH2Transport,
  h2: async () => (await import('./h2-transport.ts')).H2Transport,
  'grpc-js': async () => (await import('./grpc-js-transport.ts')).GrpcJsTransport,
};

/** Stands in for the peer of a 1-rank ring, which never communicates. */
const NO_PEER: RingPeer = {
  send: () => Promise.reject(new RingProtocolError('a 1-rank ring has no peer')),
  receive: () => Promise.reject(new RingProtocolError('a 1-rank ring has no peer')),
  abort: () => {},
};

export class GrpcRing {
  /** Refused calls and dropped messages, by reason. */
  readonly rejected: RingRejectCounters = { foreignJob: 0, staleStep: 0, wrongSender: 0, badToken: 0, staleEpoch: 0 };
  private stateNow: RingState = 'listening';
  private brokenBy: Error | null = null;
  private readonly peer: TransportPeer | null;
  private readonly transport: RingTransport;
  private peers: string[] = [];
  private rightReady: { resolve: () => void; reject: (err: Error) => void; accepted: boolean; refused?: Error } = { resolve: () => {}, reject: () => {}, accepted: false };
  private busy = false;
  private lastStep = -1;
  private readonly progress = { round: null as number | null };
  private address_ = '';
  private readonly cost = { collectives: 0, wallSeconds: 0, cpuSeconds: 0, payloadBytesSent: 0 };
  /** Connections per link actually used (1 for a 1-rank ring, which has no link). */
  private readonly stripes: number;
  /** Stripes 1..K-1 in their threads, on stripe 0 of a striped ring only (stripe-group.ts). */
  private group: StripeGroup | null = null;
  private port_ = 0;

  private constructor(
    private readonly o: CompiledRingOptions,
    readonly epoch: number,
    private readonly stripe: number,
    private readonly onBroken: ((err: Error) => void) | undefined,
    Transport: TransportClass,
  ) {
    this.stripes = o.worldSize > 1 ? o.connections : 1;
    const ctx = { rejected: this.rejected, where: () => this.where(), onFailure: (err: Error) => this.markBroken(err) };
    this.transport = new Transport(o, ctx);
    this.peer = this.transport.peer;
  }

  static async create(options: StripeRingOptions): Promise<GrpcRing> {
    const { epoch = 0, stripe = 0, onBroken, ...rest } = options;
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new InputError(`ring epoch must be a non-negative integer, got ${epoch}`);
    const o = compileRingOptions(rest);
    if (!Number.isInteger(stripe) || stripe < 0 || stripe >= o.connections) throw new InputError(`stripe ${stripe} is not one of ${o.connections} connections`);
    if (stripe > 0 || o.worldSize === 1 || o.connections === 1) return GrpcRing.listenOne(o, epoch, stripe, onBroken);
    // Stripe 0 of a striped ring starts the others on the next ports. With an ephemeral port those
    // may be taken: start again on another one (a fixed port's EADDRINUSE goes to the caller).
    for (let attempt = 0; ; attempt++) {
      const ring = await GrpcRing.listenOne(o, epoch, 0, onBroken);
      try {
        ring.group = await StripeGroup.start({ options: rest, epoch, basePort: ring.port_, stripes: o.connections }, (err) => ring.stripeBroken(err));
        return ring;
      } catch (err) {
        await ring.close();
        if (o.listenPort !== 0 || attempt >= 9 || !/EADDRINUSE/.test((err as Error).message)) throw err;
      }
    }
  }

  private static async listenOne(o: CompiledRingOptions, epoch: number, stripe: number, onBroken: ((err: Error) => void) | undefined): Promise<GrpcRing> {
    const ring = new GrpcRing(o, epoch, stripe, onBroken, await TRANSPORT_CLASSES[o.transport]());
    const port = await ring.transport
      .listen(o.listenHost, o.listenPort, {
        pull: (req, token) => ring.decidePull(req, token),
        pullAttached: () => ring.rightReady.resolve(),
        ping: (req, token) => ring.answerPing(req, token),
      })
      .catch((err: unknown) => {
        throw new InputError(`cannot listen on ${hostPort(o.listenHost, o.listenPort)}: ${String(err)}`);
      });
    ring.port_ = port;
    ring.address_ = hostPort(o.advertiseHost, port);
    return ring;
  }

  /** Which implementation of the gRPC protocol this ring uses ('raw-h2', 'h2' or 'grpc-js'). */
  get transportName(): string {
    return this.o.transport;
  }

  /** host:port other ranks dial (the port actually bound). */
  get address(): string {
    return this.address_;
  }

  get state(): RingState {
    return this.stateNow === 'connected' && this.peer?.state.broken ? 'broken' : this.stateNow;
  }

  /**
   * What the collectives cost this process so far: count, wall and CPU seconds (process CPU, all
   * threads, during allReduce: the worker computes nothing meanwhile) and payload bytes this rank sent
   * (2(N-1)/N of each buffer, in wire bytes). cpuSeconds / (payloadBytesSent / 1e9) is the cost per byte
   * that bench:allreduce reports as `cpu s/GB`; a regression in it shows whatever the wall time.
   */
  get costs(): { collectives: number; wallSeconds: number; cpuSeconds: number; payloadBytesSent: number } {
    return { ...this.cost };
  }

  /**
   * Connections per link, and for a striped ring (connections > 1) the copies into and out of its shared
   * buffer: collectives whose gradient was not in a SharedArrayBuffer, and the seconds and bytes copied.
   */
  get striping(): { connections: number; copies: number; copySeconds: number; copyBytes: number } {
    const c = this.group?.copy ?? { collectives: 0, seconds: 0, bytes: 0 };
    return { connections: this.stripes, copies: c.collectives, copySeconds: c.seconds, copyBytes: c.bytes };
  }

  /** Messages sent and received over this ring's lifetime (stripe 0's on a striped ring), and payloads that needed an alignment copy. */
  get stats(): { messagesSent: number; messagesReceived: number; alignCopies: number } {
    return { ...(this.peer?.stats ?? { messagesSent: 0, messagesReceived: 0, alignCopies: 0 }) };
  }

  get rank(): number {
    return this.o.rank;
  }

  get worldSize(): number {
    return this.o.worldSize;
  }

  /** Joins the ring: `peerAddresses[r]` is rank r's address (ring order = rank order). */
  async connect(peerAddresses: readonly string[]): Promise<void> {
    if (this.stateNow !== 'listening') throw new RingProtocolError(`connect() in state ${this.stateNow}`);
    if (peerAddresses.length !== this.o.worldSize) {
      throw new InputError(`connect(): got ${peerAddresses.length} addresses for world size ${this.o.worldSize}`);
    }
    // Stripe k dials port + k of each rank (stripes.ts); stripe 0 the addresses as given.
    this.peers = peerAddresses.map((a) => stripeAddress(a, this.stripe));
    this.stateNow = 'connecting';
    if (!this.peer) {
      this.stateNow = 'connected';
      return;
    }
    const deadline = Date.now() + this.o.connectTimeoutMs;
    try {
      await Promise.all([this.pullFromLeft(this.peer, deadline), this.waitForRight(this.peer, deadline), ...(this.group?.connect(peerAddresses) ?? [])]);
    } catch (err) {
      this.markBroken(err as Error);
      throw err;
    }
    if (this.stateNow === 'connecting') this.stateNow = 'connected';
    if (this.brokenBy) throw this.brokenBy;
  }

  /** In-place all-reduce of `buf`; every rank ends with bit-identical contents. */
  async allReduce(buf: Float32Array, options: AllReduceOptions): Promise<void> {
    const op = options.op ?? ALL_REDUCE_DEFAULTS.op;
    const codecName = options.codec ?? ALL_REDUCE_DEFAULTS.codec;
    const timeoutMs = options.timeoutMs ?? ALL_REDUCE_DEFAULTS.timeoutMs;
    const exactTail = options.exactTail ?? 0;
    if (!(op in { sum: 1, mean: 1 }) || !(codecName in codecs) || !Number.isInteger(exactTail) || exactTail < 0 || exactTail > buf.length) {
      throw new InputError(`allReduce(): bad options op=${op} codec=${codecName} timeoutMs=${timeoutMs} exactTail=${exactTail} (buffer of ${buf.length})`);
    }
    const codec = codecs[codecName];
    const n = this.o.worldSize;
    // Each rank sends 2(N-1)/N of the buffer (over all its stripes).
    const sent = allReduceBytesPerRank(buf.length, n, codec, exactTail);
    // A stripe reduces its slice of every chunk (stripes.ts); its messages are cut from its own length.
    const chunkRanges = this.stripes > 1 ? stripeChunkRanges(buf.length, n, this.stripes, this.stripe) : undefined;
    const maxElementsPerMessage = messageElements(this.o, chunkRanges ? rangesLength(chunkRanges) : buf.length, n);
    await this.collective('allReduce', options.step, timeoutMs, sent, buf, (peer, b) => ringAllReduce(peer, b, {
      rank: this.o.rank, worldSize: n, step: options.step, op, codec, maxElementsPerMessage, chunkRanges, exactTail, progress: this.progress,
    }), (t, b) => t.allReduce(b, { step: options.step, op, codec: codecName, timeoutMs, exactTail }));
  }

  /**
   * Every rank ends with rank `root`'s `buf`, bit for bit (fp32 on the wire whatever the job's codec:
   * a broadcast hands state over, it must not round). `step` is a collective sequence number like
   * allReduce's: above the ring's previous one.
   */
  async broadcast(buf: Float32Array, options: { step: number; root: number; timeoutMs?: number }): Promise<void> {
    const timeoutMs = options.timeoutMs ?? ALL_REDUCE_DEFAULTS.timeoutMs;
    const n = this.o.worldSize;
    if (!Number.isInteger(options.root) || options.root < 0 || options.root >= n) throw new InputError(`broadcast(): root ${options.root} is not a rank of ${n}`);
    // Every rank but the one left of root forwards the whole buffer once.
    const sent = (this.o.rank + 1) % n === options.root ? 0 : buf.length * codecs.fp32.bytesPerElement;
    // A stripe forwards its contiguous part of the buffer (stripes.ts stripeRange).
    const part = (b: Float32Array) => {
      const r = stripeRange(b.length, this.stripes, this.stripe);
      return this.stripes > 1 ? b.subarray(r.start, r.end) : b;
    };
    await this.collective('broadcast', options.step, timeoutMs, sent, buf, (peer, b) => ringBroadcast(peer, part(b), {
      rank: this.o.rank, worldSize: n, step: options.step, root: options.root, codec: codecs.fp32, maxElementsPerMessage: messageElements(this.o, part(b).length, 1), progress: this.progress,
    }), (t, b) => t.broadcast(b, { step: options.step, root: options.root, timeoutMs }));
  }

  /**
   * The state checks, deadline and cost accounting every collective shares; `run` is the algorithm on
   * this ring's peer. On a striped ring `each` starts the same collective in every stripe thread, all
   * on one shared buffer (stripe-group.ts), and the first stripe to fail fails the others with its error.
   */
  private async collective(
    what: string, step: number, timeoutMs: number, bytesSent: number, buf: Float32Array,
    run: (peer: RingPeer, buf: Float32Array) => Promise<void>, each: (t: StripeThread, buf: Float32Array) => Promise<void>,
  ): Promise<void> {
    if (this.brokenBy) throw this.brokenBy;
    if (this.stateNow === 'closed') throw new RingClosedError(`rank ${this.o.rank}: ${what}() after close()`);
    if (this.stateNow !== 'connected') throw new RingProtocolError(`${what}() before connect() (state ${this.stateNow})`);
    if (this.busy) throw new RingProtocolError(`${what}() while another collective is running on this ring`);
    this.peer?.state.checkUsable();
    if (!Number.isSafeInteger(step) || step <= this.lastStep) {
      throw new RingProtocolError(`step ${step} must be an integer above the previous step ${this.lastStep}`);
    }
    if (!(timeoutMs > 0)) throw new InputError(`${what}(): bad timeoutMs=${timeoutMs}`);
    this.busy = true;
    const peer = this.peer;
    if (peer) peer.state.activeStep = step;
    this.progress.round = null;
    const disarm = peer ? this.armTimeout(peer, step, timeoutMs) : () => {};
    const [cpu0, t0] = [process.cpuUsage(), performance.now()];
    try {
      const group = this.group;
      if (group) await group.run(buf, (b) => run(peer ?? NO_PEER, b), each, (err) => this.abortWith(err));
      else await run(peer ?? NO_PEER, buf);
    } catch (err) {
      throw this.brokenBy ?? err; // the first error names the cause; later ones are its echoes
    } finally {
      disarm();
      if (peer) {
        peer.state.activeStep = null;
        peer.state.lastStep = step;
      }
      this.lastStep = step;
      this.busy = false;
      const cpu = process.cpuUsage(cpu0);
      this.cost.collectives++;
      this.cost.wallSeconds += (performance.now() - t0) / 1000;
      this.cost.cpuSeconds += (cpu.user + cpu.system) / 1e6;
      this.cost.payloadBytesSent += bytesSent;
    }
  }

  /** Closes streams, client and server; pending collectives fail with RingClosedError. */
  async close(): Promise<void> {
    if (this.stateNow === 'closed') return;
    this.stateNow = 'closed';
    this.peer?.close();
    await Promise.all([this.transport.close(), this.group?.close()]);
  }

  /**
   * Breaks the ring with `err` as if this rank had seen it: a pending collective fails with it and the
   * neighbours get an abort naming err's rank. How one stripe's failure reaches the others.
   */
  abortWith(err: Error): void {
    this.markBroken(err);
    this.peer?.abort(err);
  }

  /** A stripe thread's ring broke (between or during collectives): the whole ring is broken. */
  private stripeBroken(err: Error): void {
    this.abortWith(err);
  }

  private where(): CollectiveWhere {
    return { observer: this.o.rank, step: this.peer?.state.activeStep ?? null, round: this.progress.round };
  }

  private markBroken(err: Error): void {
    if (this.brokenBy || this.stateNow === 'closed') return;
    this.brokenBy = err;
    this.stateNow = 'broken';
    this.onBroken?.(err); // a stripe thread tells stripe 0
    this.group?.abort(err); // stripe 0 fails the other stripes with the same error
  }

  private pullFromLeft(peer: TransportPeer, deadline: number): Promise<void> {
    const o = this.o;
    const req = { jobId: o.jobId, rank: o.rank, worldSize: o.worldSize, epoch: this.epoch, stripe: this.stripe, connections: this.stripes };
    return this.transport.pullFromLeft(this.peers[peer.leftRank]!, req, deadline);
  }

  private waitForRight(peer: TransportPeer, deadline: number): Promise<void> {
    if (this.rightReady.accepted) return Promise.resolve();
    if (this.rightReady.refused) return Promise.reject(this.rightReady.refused);
    const right = peer.rightRank;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RingConnectError(right, this.peers[right]!, `did not open its Pull stream to us within ${this.o.connectTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      this.rightReady.resolve = () => (clearTimeout(timer), resolve());
      this.rightReady.reject = (err) => (clearTimeout(timer), reject(err));
    });
  }

  /** Server side of Pull: only our right neighbour, of this job, holding the token, once. */
  private decidePull(req: PullRequest, token: unknown): Refusal | null {
    if (!tokenMatches(token, this.o.token)) {
      this.rejected.badToken++;
      return { code: GrpcStatus.UNAUTHENTICATED, details: 'missing or wrong job token' };
    }
    if (req.jobId !== this.o.jobId) {
      this.rejected.foreignJob++;
      return { code: GrpcStatus.PERMISSION_DENIED, details: `this ring serves job ${this.o.jobId}, not ${req.jobId}` };
    }
    if (this.staleEpoch(req.epoch)) return { code: GrpcStatus.FAILED_PRECONDITION, details: `this ring is epoch ${this.epoch}, the caller's is ${req.epoch ?? 0}` };
    const peer = this.peer;
    if (!peer || req.rank !== peer.rightRank || req.worldSize !== this.o.worldSize) {
      this.rejected.wrongSender++;
      return { code: GrpcStatus.PERMISSION_DENIED, details: `rank ${this.o.rank} of ${this.o.worldSize} only serves its right neighbour` };
    }
    // A stock grpc-js peer sends neither field: stripe 0 of 1.
    const [stripe, connections] = [req.stripe ?? 0, req.connections || 1];
    if (connections !== this.stripes || stripe !== this.stripe) {
      this.rejected.wrongSender++;
      const details = `cluster.ring_connections differs: rank ${this.o.rank} uses ${this.stripes} connection(s) per link, ` +
        `rank ${req.rank} uses ${connections} (its stripe ${stripe}); every rank of a job needs the same ring_connections`;
      if (!this.rightReady.accepted) {
        this.rightReady.refused = new RingConnectError(req.rank, 'the Pull it opened', details);
        this.rightReady.reject(this.rightReady.refused);
      }
      return { code: GrpcStatus.FAILED_PRECONDITION, details };
    }
    if (this.rightReady.accepted) return { code: GrpcStatus.ALREADY_EXISTS, details: 'the right neighbour is already connected' };
    if (this.stateNow !== 'listening' && this.stateNow !== 'connecting') return { code: GrpcStatus.UNAVAILABLE, details: `ring is ${this.stateNow}` };
    this.rightReady.accepted = true;
    return null;
  }

  private answerPing(req: PingRequest, token: unknown): Refusal | PingReply {
    if (!tokenMatches(token, this.o.token)) {
      this.rejected.badToken++;
      return { code: GrpcStatus.UNAUTHENTICATED, details: 'missing or wrong job token' };
    }
    if (req.jobId !== this.o.jobId) {
      this.rejected.foreignJob++;
      return { code: GrpcStatus.PERMISSION_DENIED, details: `this ring serves job ${this.o.jobId}` };
    }
    if (this.staleEpoch(req.epoch)) return { code: GrpcStatus.FAILED_PRECONDITION, details: `this ring is epoch ${this.epoch}, the caller's is ${req.epoch ?? 0}` };
    const active = this.peer?.state.activeStep ?? null;
    return { jobId: this.o.jobId, rank: this.o.rank, step: Math.max(0, active ?? this.lastStep), inCollective: active !== null };
  }

  /** True (and counted) when a caller belongs to another ring epoch. */
  private staleEpoch(epoch: number | undefined): boolean {
    if ((epoch ?? 0) === this.epoch) return false;
    this.rejected.staleEpoch++;
    return true;
  }

  /**
   * Per-collective deadline. Probe window = timeoutMs/4 clamped to [20, 2000] ms: at timeoutMs minus
   * the window every rank pings all others; at timeoutMs it fails naming the nearest rank upstream
   * (towards the data it waits for) that did not answer, else the nearest that answered but is not in
   * this collective (stuck before it, or on another step), else its left neighbour.
   */
  private armTimeout(peer: TransportPeer, step: number, timeoutMs: number): () => void {
    const probeMs = Math.min(2000, Math.max(20, Math.floor(timeoutMs / 4)));
    let probe: Map<number, 'silent' | 'elsewhere'> | null = null;
    const probeTimer = setTimeout(() => {
      void this.probe(step, Math.floor(probeMs * 0.8)).then((p) => (probe = p));
    }, timeoutMs - probeMs);
    const failTimer = setTimeout(() => {
      const n = this.o.worldSize;
      const upstream = Array.from({ length: n - 1 }, (_, k) => (this.o.rank - 1 - k + n) % n);
      const found = probe as Map<number, 'silent' | 'elsewhere'> | null;
      const suspect =
        upstream.find((r) => found?.get(r) === 'silent') ?? upstream.find((r) => found?.get(r) === 'elsewhere') ?? peer.leftRank;
      const list = (kind: string) => [...(found ?? [])].filter(([, v]) => v === kind).map(([r]) => r).join(', ');
      const detail =
        found === null ? 'the liveness probe did not finish'
        : found.size === 0 ? `every rank answered a ping and is in step ${step}; no data came from rank ${peer.leftRank}`
        : [list('silent') && `rank(s) ${list('silent')} did not answer a ping`, list('elsewhere') && `rank(s) ${list('elsewhere')} are not in step ${step}`]
            .filter(Boolean).join('; ');
      peer.abort(new CollectiveTimeoutError(suspect, timeoutMs, this.where(), detail));
    }, timeoutMs);
    return () => {
      clearTimeout(probeTimer);
      clearTimeout(failTimer);
    };
  }

  /** Pings every other rank with a deadline; returns the ranks that did not answer or are elsewhere. */
  private async probe(step: number, deadlineMs: number): Promise<Map<number, 'silent' | 'elsewhere'>> {
    const o = this.o;
    const result = new Map<number, 'silent' | 'elsewhere'>();
    await Promise.all(
      this.peers.map(async (address, r) => {
        if (r === o.rank) return;
        try {
          const reply = await this.transport.ping(address, { jobId: o.jobId, rank: o.rank, epoch: this.epoch }, deadlineMs);
          if (!reply.inCollective || reply.step !== step) result.set(r, 'elsewhere');
        } catch {
          result.set(r, 'silent');
        }
      }),
    );
    return result;
  }
}
