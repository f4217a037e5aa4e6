/**
 * The control messages: their TypeScript shapes and protobuf encoding, from control.proto through
 * protobufjs (the .proto file is the contract). bus.ts seals and sends them; validate.ts checks them.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/ringtune/v1/control.proto', import.meta.url)));

/** Plain-object shapes of the control messages (int64 fields decode to numbers). */
export interface ControlMessages {
  Join: { workerId: string; ringAddress: string; backend: string; rankHint: number; pid: number; host: string; metricsPort: number };
  Assignment: { runId: string; workerId: string; rank: number; worldSize: number; peers: Array<{ rank: number; workerId: string; ringAddress: string }>; compiledJobJson: string; resumeFrom: string; refused?: string; epoch?: number; standby?: boolean };
  Ready: { runId: string; rank: number; trainExamples: number; evalExamples: number; startStep: number; totalSteps: number; labels?: string[]; standby?: boolean; workerId?: string };
  Heartbeat: { workerId: string; rank: number; phase: string; step: number; runId: string; activity?: string; activityMs?: number; epoch?: number; reformEpoch?: number };
  StepReport: { runId: string; rank: number; step: number; loss: number; count: number; gradNorm: number; lr: number; inputTokens: number; samples: number; computeMs: number; reduceMs: number; paramHash: string; reduceBytes: number; epoch?: number };
  EvalReport: { runId: string; rank: number; step: number; stateJson: string; epoch?: number };
  CheckpointReport: { runId: string; step: number; path: string };
  Done: { runId: string; rank: number; step: number; finalModelDir: string; stopped?: boolean; checkpoint?: string };
  Failed: { runId: string; rank: number; workerId: string; error: string; step: number; lostRank: number; survivor?: boolean; epoch?: number };
  ReformReport: { runId: string; workerId: string; epoch: number; appliedStep: number; paramHash: string; ringAddress: string };
  Leave: { runId: string; workerId: string; rank: number; epoch: number; step: number; reason: string; left: boolean };
  Control: { runId: string; start?: { startStep: number }; evalDecision?: { step: number; stop: boolean; best: number; badEvals: number }; abort?: { reason: string; rank: number; lastStep: number }; shutdown?: Record<string, never>; stop?: Record<string, never>; alive?: { step: number; checkpointStep?: number };
    reform?: { epoch: number; reason: string; dropped: string[]; atBoundary: boolean };
    plan?: { epoch: number; peers: Array<{ rank: number; workerId: string; ringAddress: string }>; targetStep: number; sourceRank: number; evaluate?: boolean };
    recover?: { epoch: number; reason: string; dropped?: string[] } };
  StatusRequest: Record<string, never>;
  StatusReply: {
    job: string; runId: string; phase: string; step: number; totalSteps: number; worldSize: number; workersAlive: number; lastLoss: number;
    workers: Array<{ rank: number; workerId: string; phase: string; step: number; heartbeatAgeMs: number; ringAddress: string; activity?: string; activityMs?: number }>;
    lastEvalJson: string; lastCheckpointStep: number; error: string; epoch?: number;
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
