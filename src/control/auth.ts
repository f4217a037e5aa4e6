/**
 * Authentication of the control plane. Every message of a job travels in an Envelope (control.proto)
 * that names its type, job, sender, a per-sender sequence number and the sender's clock, and carries
 * HMAC-SHA256 over all of that and the encoded message, keyed by a secret every member of the job
 * holds. The secret is distributed out of band (RINGTUNE_JOB_SECRET, a file, a Kubernetes Secret),
 * never over NATS; the ring's token is derived from it per run, so no credential is ever in a message.
 *
 * What a receiver rejects, before the message is decoded or used (reasons are metric labels):
 *   malformed   the envelope does not decode
 *   wrong-type  the envelope carries another message type than the subject's
 *   wrong-job   the envelope names another job
 *   bad-mac     the MAC does not verify (no secret, a different secret, or a modified message)
 *   stale       the sender's clock is more than `maxSkewMs` away from ours (an old message replayed)
 *   replay      a sequence number not above the last one seen from that sender on that subject
 * HMAC and not signatures: every member is equally trusted and a shared key costs microseconds.
 * Per-subject sequence tracking because the bus consumes each subject in its own loop: across
 * subjects a receiver may see one sender's messages out of order, within one subject never.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.ts';

export const REJECT_REASONS = ['malformed', 'wrong-type', 'wrong-job', 'bad-mac', 'stale', 'replay', 'invalid', 'handler-error'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export class ControlSecretError extends InputError {
  override readonly name: string = 'ControlSecretError';
}

/** The envelope's fields as plain values (control.proto `Envelope`). */
export interface Envelope {
  type: string;
  job: string;
  sender: string;
  seq: number;
  sentMs: number;
  body: Uint8Array;
  mac: Uint8Array;
}

const MIN_SECRET_BYTES = 16;

/**
 * The job secret: RINGTUNE_JOB_SECRET, else the file named by `file` (flag), RINGTUNE_JOB_SECRET_FILE
 * or the job's cluster.secret_file, in that order. Missing or short: a ControlSecretError saying how
 * to make one.
 */
export function loadJobSecret(o: { file?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const env = o.env ?? process.env;
  const how = 'set RINGTUNE_JOB_SECRET (e.g. `export RINGTUNE_JOB_SECRET=$(openssl rand -hex 32)`) or RINGTUNE_JOB_SECRET_FILE / --secret-file ' +
    'to the same value on the coordinator, every worker and `ringtune status` (`ringtune local` makes one itself)';
  let secret = env.RINGTUNE_JOB_SECRET;
  let from = 'RINGTUNE_JOB_SECRET';
  const file = secret ? undefined : (o.file ?? env.RINGTUNE_JOB_SECRET_FILE);
  if (file) {
    try {
      secret = readFileSync(file, 'utf8').trim();
      from = file;
    } catch (err) {
      throw new ControlSecretError(`job secret file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${how}`);
    }
  }
  if (!secret) throw new ControlSecretError(`the control plane needs the job's shared secret: ${how}`);
  if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) throw new ControlSecretError(`job secret from ${from} is ${Buffer.byteLength(secret)} bytes; at least ${MIN_SECRET_BYTES} are needed: ${how}`);
  return secret;
}

/** A fresh secret for a job run by `ringtune local` (and tests). */
export function newJobSecret(): string {
  return randomBytes(32).toString('hex');
}

const derive = (secret: string, job: string, info: string, bytes = 32) =>
  Buffer.from(hkdfSync('sha256', Buffer.from(secret), Buffer.from(`ringtune/${job}`), Buffer.from(info), bytes));

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const field = (s: string) => { const b = Buffer.from(s); return Buffer.concat([u32(b.length), b]); };

export type Verdict = { ok: true } | { ok: false; reason: RejectReason; detail: string };

export class ControlAuth {
  private readonly key: Buffer;
  private seq = 0;
  private readonly lastSeq = new Map<string, number>();

  constructor(
    private readonly secret: string,
    readonly job: string,
    /** This process's sender id: the worker id, or `coordinator-<random>`. */
    readonly sender: string,
    readonly maxSkewMs = 5 * 60_000,
  ) {
    this.key = derive(secret, job, 'control-mac-v1');
  }

  /** The token of the ring of run `runId` (ring.proto's token metadata), the same on every member. */
  ringToken(runId: string): string {
    return derive(this.secret, this.job, `ring-token-v1/${runId}`, 16).toString('hex');
  }

  seal(type: string, body: Uint8Array): Envelope {
    const env = { type, job: this.job, sender: this.sender, seq: ++this.seq, sentMs: Date.now(), body };
    return { ...env, mac: this.mac(env) };
  }

  /** Checks an arrived envelope for `type` on `subject`; records its sequence number when accepted. */
  open(e: Envelope, type: string, subject: string): Verdict {
    if (e.type !== type) return { ok: false, reason: 'wrong-type', detail: `${e.type} on the ${type} subject` };
    if (e.job !== this.job) return { ok: false, reason: 'wrong-job', detail: `job ${JSON.stringify(e.job.slice(0, 64))}` };
    const want = this.mac(e);
    if (e.mac.length !== want.length || !timingSafeEqual(e.mac, want)) return { ok: false, reason: 'bad-mac', detail: `from ${JSON.stringify(e.sender.slice(0, 64))}` };
    const skew = Math.abs(Date.now() - e.sentMs);
    if (skew > this.maxSkewMs) return { ok: false, reason: 'stale', detail: `sent ${Math.round(skew / 1000)} s away from this clock (limit ${this.maxSkewMs / 1000} s)` };
    const k = `${subject}\0${e.sender}`;
    const last = this.lastSeq.get(k) ?? 0;
    if (e.seq <= last) return { ok: false, reason: 'replay', detail: `seq ${e.seq} from ${e.sender} after ${last}` };
    this.lastSeq.set(k, e.seq);
    if (this.lastSeq.size > 100_000) this.lastSeq.delete(this.lastSeq.keys().next().value!); // bounded: oldest sender forgotten
    return { ok: true };
  }

  private mac(e: Omit<Envelope, 'mac'>): Buffer {
    return createHmac('sha256', this.key)
      .update(Buffer.concat([field(e.type), field(e.job), field(e.sender), u64(e.seq), u64(e.sentMs), u32(e.body.length)]))
      .update(e.body)
      .digest();
  }
}
