/**
 * Typed, authenticated protobuf publish/subscribe over NATS. Message types come from control.proto
 * through protobufjs, so the .proto file is the contract. Every message is sealed in an Envelope
 * (auth.ts); what arrives is opened, decoded and checked (validate.ts) before a handler sees it, and
 * a handler that throws is contained. Whatever is dropped is counted by reason (`rejected`, the
 * ringtune_control_rejected_total metric) and logged at most once per reason every 10 s.
 */
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from 'nats';
import { RingtuneError } from '../errors.ts';
import { ControlAuth, type Envelope, type RejectReason } from './auth.ts';
import { checkMessage } from './validate.ts';
import { decode, encode, root, type ControlMessages, type MessageName } from './messages.ts';

export { decode, encode, type ControlMessages, type MessageName } from './messages.ts';

/** Who sent an accepted message (the envelope's sender) and where to answer a request. */
export interface MessageMeta {
  sender: string;
  reply?: string;
}

export interface BusOptions {
  url: string;
  name: string;
  token?: string;
  user?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

const envelopeType = () => root.lookupType('ringtune.v1.Envelope');

function seal(auth: ControlAuth, name: MessageName, msg: ControlMessages[MessageName]): Uint8Array {
  const t = envelopeType();
  return t.encode(t.fromObject(auth.seal(name, encode(name, msg)) as unknown as Record<string, unknown>)).finish();
}

export class Bus {
  /** Dropped messages by reason. */
  readonly rejected = new Map<RejectReason, number>();
  onReject?: (reason: RejectReason, subject: string, detail: string) => void;
  /** Called when the NATS connection drops (false) and comes back (true). */
  onConnection?: (up: boolean) => void;
  /**
   * Called when NATS ends a subscription with an error (a permissions violation: this connection's
   * user may not subscribe to `subject`); the process then hears nothing on it. Logged either way.
   */
  onSubscriptionError?: (subject: string, err: Error) => void;
  private subs: Subscription[] = [];
  private lastLog = new Map<RejectReason, number>();
  private downSince?: number;

  private constructor(readonly nc: NatsConnection, readonly auth: ControlAuth, private readonly log: (line: string) => void) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' && this.downSince === undefined) {
          this.downSince = performance.now();
          this.log(`[control] lost the NATS connection (${String(s.data)}); reconnecting`);
          this.onConnection?.(false);
        } else if (s.type === 'reconnect' && this.downSince !== undefined) {
          this.log(`[control] NATS connection back after ${Math.round(performance.now() - this.downSince)} ms`);
          this.downSince = undefined;
          this.onConnection?.(true);
        }
      }
    })().catch(() => {});
  }

  /** How long the NATS connection has been down, 0 while connected. */
  get disconnectedMs(): number {
    return this.downSince === undefined ? 0 : performance.now() - this.downSince;
  }

  static async connect(o: BusOptions, auth: ControlAuth, log: (line: string) => void = (l) => console.error(l)): Promise<Bus> {
    const opts: ConnectionOptions = { servers: o.url, name: o.name, maxReconnectAttempts: -1, reconnectTimeWait: 500 };
    if (o.token) opts.token = o.token;
    if (o.user) { opts.user = o.user; opts.pass = o.password; }
    if (o.tls) opts.tls = { caFile: o.tls.caFile, certFile: o.tls.certFile, keyFile: o.tls.keyFile };
    try {
      return new Bus(await connect(opts), auth, log);
    } catch (err) {
      throw new RingtuneError(`cannot connect to NATS at ${o.url.replace(/\/\/[^@]*@/, '//***@')}: ${(err as Error).message}. Is nats-server running (ringtune local starts one)?`, { cause: err });
    }
  }

  get dropped(): number {
    return [...this.rejected.values()].reduce((a, b) => a + b, 0);
  }

  publish<N extends MessageName>(subject: string, name: N, msg: ControlMessages[N]): void {
    this.nc.publish(subject, seal(this.auth, name, msg));
  }

  /** Calls `handler` with each authenticated, well-formed `name` on `subject`, one at a time. */
  subscribe<N extends MessageName>(subject: string, name: N, handler: (msg: ControlMessages[N], meta: MessageMeta) => void | Promise<void>): void {
    const sub = this.nc.subscribe(subject);
    this.subs.push(sub);
    void (async () => {
      for await (const m of sub) {
        const opened = this.open(m.data, name, subject);
        if (!opened) continue;
        try {
          await handler(opened.msg, { sender: opened.sender, reply: m.reply });
        } catch (err) {
          this.countRejected('handler-error', subject, `${name} from ${opened.sender}: ${(err as Error).message}`);
        }
      }
    })().catch((err: Error) => {
      // Not a rejection left unhandled (it would end the process with a stack trace): the owner decides.
      this.log(`[control] NATS ended the subscription to ${subject}: ${err.message}`);
      this.onSubscriptionError?.(subject, err);
    });
  }

  respond<N extends MessageName>(reply: string, name: N, msg: ControlMessages[N]): void {
    this.nc.publish(reply, seal(this.auth, name, msg));
  }

  async request<Req extends MessageName, Rep extends MessageName>(subject: string, reqName: Req, req: ControlMessages[Req], repName: Rep, timeoutMs: number): Promise<ControlMessages[Rep]> {
    const m = await this.nc.request(subject, seal(this.auth, reqName, req), { timeout: timeoutMs });
    const opened = this.open(m.data, repName, subject);
    if (!opened) throw new RingtuneError(`the answer on ${subject} was rejected (${[...this.rejected.keys()].at(-1)}): is the job secret the same as the coordinator's?`);
    return opened.msg;
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  /** Drains (bounded: NATS may be down, and a process must still be able to exit), then closes. */
  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    if (this.downSince === undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.nc.drain(), new Promise((r) => (timer = setTimeout(r, 2000)))]).catch(() => {});
      clearTimeout(timer);
    }
    if (!this.nc.isClosed()) await this.nc.close().catch(() => {});
  }

  private open<N extends MessageName>(data: Uint8Array, name: N, subject: string): { msg: ControlMessages[N]; sender: string } | undefined {
    let env: Envelope;
    try {
      const t = envelopeType();
      env = t.toObject(t.decode(data), { longs: Number, bytes: Uint8Array, defaults: true }) as Envelope;
    } catch (err) {
      this.countRejected('malformed', subject, (err as Error).message);
      return undefined;
    }
    const v = this.auth.open(env, name, subject);
    if (!v.ok) {
      this.countRejected(v.reason, subject, v.detail);
      return undefined;
    }
    let msg: ControlMessages[N];
    try {
      msg = decode(name, env.body);
    } catch (err) {
      this.countRejected('malformed', subject, `${name} from ${env.sender}: ${(err as Error).message}`);
      return undefined;
    }
    const problem = checkMessage(name, msg);
    if (problem) {
      this.countRejected('invalid', subject, `from ${env.sender}: ${problem}`);
      return undefined;
    }
    return { msg, sender: env.sender };
  }

  /** Counts (and rate-limited logs) a dropped message; receivers call it for messages that are not theirs. */
  countRejected(reason: RejectReason, subject: string, detail: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.onReject?.(reason, subject, detail);
    const now = performance.now();
    if (now - (this.lastLog.get(reason) ?? -Infinity) < 10_000) return;
    this.lastLog.set(reason, now);
    this.log(`[control] rejected a message on ${subject} (${reason}: ${detail}); ${this.rejected.get(reason)} so far for this reason`);
  }
}
