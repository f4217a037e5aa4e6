/**
 * Structural checks of every control message after it decoded and authenticated, before any handler
 * sees it: ids and strings bounded, ranks and steps non-negative integers in range, phases from the
 * documented set, JSON payloads bounded. Semantic checks (is this rank in this run, did this sender
 * get that rank) belong to the receiver (coordinator.ts, worker.ts).
 * Losses, norms and eval values may be NaN or infinite on purpose (a diverged step is reported, not
 * hidden), so those fields accept any number.
 */
import { z } from 'zod';
import type { ControlMessages, MessageName } from './messages.ts';
import { COORDINATOR_PHASES, WORKER_PHASES } from './phases.ts';

const MAX_RANKS = 4096;
const id = z.string().max(256);
const text = z.string().max(16_384);
const json = (maxBytes: number) => z.string().max(maxBytes);
const rank = z.number().int().min(0).max(MAX_RANKS - 1);
const rankOrNone = z.number().int().min(-1).max(MAX_RANKS - 1);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const anyNumber = z.custom<number>((v) => typeof v === 'number', 'must be a number');
const finite = z.number();
const address = z.string().max(512);

const SCHEMAS: { [N in MessageName]: z.ZodType } = {
  Join: z.object({ workerId: id.min(1), ringAddress: address.min(1), backend: id, rankHint: rankOrNone, pid: count, host: id, metricsPort: z.number().int().min(0).max(65535) }),
  Assignment: z.object({
    runId: id, workerId: id.min(1), rank, worldSize: z.number().int().min(0).max(MAX_RANKS),
    peers: z.array(z.object({ rank, workerId: id, ringAddress: address })).max(MAX_RANKS), compiledJobJson: json(1 << 20), resumeFrom: text, refused: text.optional(),
  }),
  Ready: z.object({ runId: id.min(1), rank, trainExamples: count, evalExamples: count, startStep: count, totalSteps: count, labels: z.array(id).max(4096).optional() }),
  Heartbeat: z.object({ workerId: id.min(1), rank: rankOrNone, phase: z.enum(WORKER_PHASES), step: count, runId: id, activity: text.optional(), activityMs: count.optional(), epoch: count.optional(), reformEpoch: count.optional() }),
  StepReport: z.object({
    runId: id.min(1), rank, step: count.min(1), loss: anyNumber, count: anyNumber, gradNorm: anyNumber, lr: finite, inputTokens: count, samples: count,
    computeMs: finite.min(0), reduceMs: finite.min(0), paramHash: z.string().max(64), reduceBytes: count,
  }),
  EvalReport: z.object({ runId: id.min(1), rank, step: count, stateJson: json(8 << 20) }),
  CheckpointReport: z.object({ runId: id.min(1), step: count, path: text }),
  Done: z.object({ runId: id.min(1), rank, step: count, finalModelDir: text, stopped: z.boolean().optional(), checkpoint: text.optional() }),
  Failed: z.object({ runId: id, rank: rankOrNone, workerId: id, error: text, step: count, lostRank: rankOrNone, survivor: z.boolean().optional(), epoch: count.optional() }),
  ReformReport: z.object({ runId: id.min(1), workerId: id.min(1), epoch: count.min(1), appliedStep: count, paramHash: z.string().max(64), ringAddress: address.min(1) }),
  Leave: z.object({ runId: id.min(1), workerId: id.min(1), rank, epoch: count, step: count, reason: text, left: z.boolean() }),
  Control: z.object({ runId: id.min(1) }).passthrough(),
  StatusRequest: z.object({}).passthrough(),
  StatusReply: z.object({ job: id, runId: id, phase: z.enum(COORDINATOR_PHASES), step: count, totalSteps: count }).passthrough(),
};

/** Undefined when `msg` is a well-formed `name`, else what is wrong (first problem, with its field). */
export function checkMessage<N extends MessageName>(name: N, msg: ControlMessages[N]): string | undefined {
  const r = SCHEMAS[name].safeParse(msg);
  if (r.success) return undefined;
  const i = r.error.issues[0];
  return `${name}.${i.path.join('.') || '(message)'}: ${i.message}`;
}
