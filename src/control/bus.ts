/**
 * Typed protobuf publish/subscribe over NATS. Message types come from control.proto through
 * protobufjs, so the .proto file is the contract; a payload that does not decode is dropped and
 * counted, never thrown into a handler.
 */
import { fileURLToPath } from 'node:url';
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from 'nats';
import protobuf from 'protobufjs';
import { RingtuneError } from '../errors.ts';

const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/ringtune/v1/control.proto', import.meta.url)));

/** Plain-object shapes of the control messages (int64 fields decode to numbers). */
export interface ControlMessages {
  Join: { workerId: string; ringAddress: string; backend: string; rankHint: number; pid: number; host: string; metricsPort: number };
  Assignment: { runId: string; workerId: string; rank: number; worldSize: number; peers: Array<{ rank: number; workerId: string; ringAddress: string }>; compiledJobJson: string; resumeFrom: string; ringToken: string };
  Ready: { runId: string; rank: number; trainExamples: number; evalExamples: number; startStep: number; totalSteps: number };
  Heartbeat: { workerId: string; rank: number; phase: string; step: number; runId: string };
  StepReport: { runId: string; rank: number; step: number; loss: number; count: number; gradNorm: number; lr: number; inputTokens: number; samples: number; computeMs: number; reduceMs: number; paramHash: string; reduceBytes: number };
  EvalReport: { runId: string; rank: number; step: number; stateJson: string };
  CheckpointReport: { runId: string; step: number; path: string };
  Done: { runId: string; rank: number; step: number; finalModelDir: string };
  Failed: { runId: string; rank: number; workerId: string; error: string; step: number; lostRank: number };
  Control: { runId: string; start?: { startStep: number }; evalDecision?: { step: number; stop: boolean; best: number; badEvals: number }; abort?: { reason: string; rank: number; lastStep: number }; shutdown?: Record<string, never>; alive?: { step: number } };
  StatusRequest: Record<string, never>;
  StatusReply: {
    job: string; runId: string; phase: string; step: number; totalSteps: number; worldSize: number; workersAlive: number; lastLoss: number;
    workers: Array<{ rank: number; workerId: string; phase: string; step: number; heartbeatAgeMs: number; ringAddress: string }>;
    lastEvalJson: string; lastCheckpointStep: number; error: string;
  };
}
export type MessageName = keyof ControlMessages;

const types = new Map<string, protobuf.Type>();
function type(name: MessageName): protobuf.Type {
  let t = types.get(name);
  if (!t) types.set(name, (t = root.lookupType(`ringtune.v1.${name}`)));
  return t;
}

export function encode<N extends MessageName>(name: N, msg: ControlMessages[N]): Uint8Array {
  const t = type(name);
  return t.encode(t.fromObject(msg as Record<string, unknown>)).finish();
}

export function decode<N extends MessageName>(name: N, bytes: Uint8Array): ControlMessages[N] {
  const t = type(name);
  return t.toObject(t.decode(bytes), { longs: Number, defaults: true, oneofs: false }) as ControlMessages[N];
}

export interface BusOptions {
  url: string;
  name: string;
  token?: string;
  user?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

export class Bus {
  dropped = 0;
  private subs: Subscription[] = [];

  private constructor(readonly nc: NatsConnection) {}

  static async connect(o: BusOptions): Promise<Bus> {
    const opts: ConnectionOptions = { servers: o.url, name: o.name, maxReconnectAttempts: -1, reconnectTimeWait: 500 };
    if (o.token) opts.token = o.token;
    if (o.user) { opts.user = o.user; opts.pass = o.password; }
    if (o.tls) opts.tls = { caFile: o.tls.caFile, certFile: o.tls.certFile, keyFile: o.tls.keyFile };
    try {
      return new Bus(await connect(opts));
    } catch (err) {
      throw new RingtuneError(`cannot connect to NATS at ${o.url.replace(/\/\/[^@]*@/, '//***@')}: ${(err as Error).message}. Is nats-server running (ringtune local starts one)?`, { cause: err });
    }
  }

  publish<N extends MessageName>(subject: string, name: N, msg: ControlMessages[N]): void {
    this.nc.publish(subject, encode(name, msg));
  }

  subscribe<N extends MessageName>(subject: string, name: N, handler: (msg: ControlMessages[N], reply?: string) => void | Promise<void>): void {
    const sub = this.nc.subscribe(subject);
    this.subs.push(sub);
    void (async () => {
      for await (const m of sub) {
        let msg: ControlMessages[N];
        try {
          msg = decode(name, m.data);
        } catch {
          this.dropped++;
          continue;
        }
        await handler(msg, m.reply);
      }
    })();
  }

  respond<N extends MessageName>(reply: string, name: N, msg: ControlMessages[N]): void {
    this.nc.publish(reply, encode(name, msg));
  }

  async request<Req extends MessageName, Rep extends MessageName>(subject: string, reqName: Req, req: ControlMessages[Req], repName: Rep, timeoutMs: number): Promise<ControlMessages[Rep]> {
    const m = await this.nc.request(subject, encode(reqName, req), { timeout: timeoutMs });
    return decode(repName, m.data);
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
