/**
 * The coordinator: one per job. The protocol, as it runs here (subjects in control/subjects.ts,
 * payloads in proto/ringtune/v1/control.proto):
 *
 *  1. Compile the job, connect to NATS, subscribe to join / ready / heartbeat / step / eval /
 *     checkpoint / done / failed / status. With --resume, find the latest checkpoint.
 *  2. Workers send Join (every second until assigned) with their ring address, backend, rank hint.
 *  3. When cluster.workers have joined (within join_timeout_ms): ranks by rank hint, then join order;
 *     each worker gets an Assignment: run id, rank, world size, every peer's ring address in ring
 *     order, the compiled job, the checkpoint to resume from and the ring's shared token.
 *  4. Workers load model and data and connect the ring, then send Ready. There is no deadline here:
 *     a large dataset may take long to tokenise; liveness is judged by heartbeats alone (step 9).
 *  5. All Ready -> Control.Start{start_step}.
 *  6. Every step every rank sends a StepReport. When all ranks reported step s, s is complete: its
 *     global loss goes to metrics.jsonl and Prometheus; on hash steps all parameter hashes must
 *     match, or the run stops naming the ranks that differ.
 *  7. At step 0 (fresh runs), every eval.every_n_steps and at the end, each rank sends the
 *     EvalReport of its eval shard; the merged result is recorded, early stopping is decided, and
 *     Control.EvalDecision tells every rank to go on or stop.
 *  8. Rank 0 writes checkpoints (atomically) and reports them; the coordinator records the step.
 *  9. A heartbeat older than heartbeat_timeout_ms, or a Failed message, stops the run: Control.Abort
 *     to all, and the coordinator fails with an error naming the rank and the last completed step.
 *     The coordinator in turn sends Control.CoordinatorAlive; workers stop if it falls silent.
 * 10. Done from every rank: write eval_report.json and report.html, Control.Shutdown, exit 0.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompiledJob } from '../config/compile.ts';
import { Bus, type BusOptions, type ControlMessages } from '../control/bus.ts';
import { subjects } from '../control/subjects.ts';
import { InputError, RingtuneError } from '../errors.ts';
import { latestCheckpoint, type TrainerState } from '../train/checkpoint.ts';
import { evalResult, mergeEvalStates, type EvalResult, type EvalState } from '../train/evaluate.ts';
import { EarlyStopper } from '../train/early-stopping.ts';
import { readHistory, writeReports, type HistoryLine } from '../train/report.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { Membership } from './membership.ts';

export type CoordinatorPhase = 'waiting-for-workers' | 'loading' | 'training' | 'finishing' | 'done' | 'failed';

export class RunFailedError extends RingtuneError {
  override readonly name: string = 'RunFailedError';
}

export interface CoordinatorEvents {
  phase?: (p: CoordinatorPhase) => void;
  workersAlive?: (n: number, worldSize: number) => void;
  step?: (r: { step: number; loss: number; lr: number; gradNorm: number; tokens: number; samples: number; tokensPerSecond: number }) => void;
  hashCheck?: (ok: boolean) => void;
  eval?: (step: number, r: EvalResult) => void;
  checkpoint?: (step: number) => void;
}

export interface CoordinatorOptions {
  job: CompiledJob;
  bus: BusOptions;
  resume?: boolean;
  log: (line: string) => void;
  events?: CoordinatorEvents;
}

export interface RunSummary {
  runId: string;
  steps: number;
  baseEval?: EvalResult;
  finalEval?: EvalResult;
  stoppedEarly: boolean;
  finalModelDir: string;
}

export async function runCoordinator(o: CoordinatorOptions): Promise<RunSummary> {
  const { job, log } = o;
  const subj = subjects(job.name);
  const runId = randomBytes(6).toString('hex');
  const resumeFrom = o.resume ? await latestCheckpoint(job.checkpoint.dir) : undefined;
  if (o.resume && !resumeFrom) throw new InputError(`--resume: no checkpoint in ${job.checkpoint.dir}`);
  const bus = await Bus.connect({ ...o.bus, name: `ringtune-coordinator-${job.name}` });
  const members = new Membership(job.cluster.workers);
  let phase: CoordinatorPhase = 'waiting-for-workers';
  const setPhase = (p: CoordinatorPhase) => { phase = p; o.events?.phase?.(p); log(`[coordinator] ${p}`); };
  let lastComplete = 0;
  let totalSteps = 0;
  let lastLoss = NaN;
  let lastEval: EvalResult | undefined;
  let lastCheckpointStep = 0;
  let baseEval: EvalResult | undefined;
  let stoppedEarly = false;
  let sizes = { train: 0, eval: 0 };
  const resumedState = resumeFrom ? (JSON.parse(await readFile(join(resumeFrom, 'trainer_state.json'), 'utf8')) as TrainerState) : undefined;
  const stopper = job.eval.earlyStopping && new EarlyStopper(job.eval.earlyStopping, resumedState?.earlyStopping);
  const stepReports = new Map<number, Map<number, ControlMessages['StepReport']>>();
  const evalReports = new Map<number, Map<number, EvalState>>();
  const ready = new Set<number>();
  const done = new Set<number>();
  const started = performance.now();

  await mkdir(job.outputDir, { recursive: true });
  const historyFile = join(job.outputDir, 'metrics.jsonl');
  const history = await readHistory(historyFile, resumedState?.step ?? 0);
  await writeFileAtomic(historyFile, history.map((h) => JSON.stringify(h) + '\n').join(''));
  const record = async (h: HistoryLine) => { history.push(h); await appendFile(historyFile, JSON.stringify(h) + '\n'); };

  let settle!: { resolve: (s: RunSummary) => void; reject: (e: Error) => void };
  const finished = new Promise<RunSummary>((resolve, reject) => (settle = { resolve, reject }));
  const control = (c: Omit<ControlMessages['Control'], 'runId'>) => bus.publish(subj.control, 'Control', { runId, ...c });
  const fail = (rank: number, reason: string) => {
    if (phase === 'failed' || phase === 'done') return;
    setPhase('failed');
    control({ abort: { reason, rank, lastStep: lastComplete } });
    const where = rank >= 0 ? `rank ${rank} (${members.byRank(rank)?.workerId ?? 'unknown worker'})` : 'the run';
    const ckpt = lastCheckpointStep ? `latest checkpoint: step ${lastCheckpointStep} in ${job.checkpoint.dir}` : 'no checkpoint was written';
    settle.reject(new RunFailedError(`${where} failed after step ${lastComplete} (last step completed by every rank): ${reason}; ${ckpt}`));
  };

  // 2-3. joins and assignment
  bus.subscribe(subj.join, 'Join', (j) => {
    if (phase !== 'waiting-for-workers') return;
    members.join(j);
    if (members.full()) assign();
  });
  const assign = () => {
    setPhase('loading');
    const token = randomBytes(16).toString('hex');
    const peers = members.assignRanks();
    for (const p of peers) {
      bus.publish(subj.worker(p.workerId), 'Assignment', {
        runId, workerId: p.workerId, rank: p.rank, worldSize: peers.length, peers, compiledJobJson: JSON.stringify(job),
        resumeFrom: resumeFrom ?? '', ringToken: token,
      });
    }
    log(`[coordinator] run ${runId}: ${peers.map((p) => `rank ${p.rank} = ${p.workerId} @ ${p.ringAddress}`).join(', ')}`);
  };
  const joinTimer = setTimeout(() => {
    if (phase === 'waiting-for-workers') fail(-1, `only ${members.size} of ${job.cluster.workers} workers joined within ${job.cluster.joinTimeoutMs} ms`);
  }, job.cluster.joinTimeoutMs);

  // 4-5. ready -> start
  bus.subscribe(subj.ready, 'Ready', (r) => {
    if (r.runId !== runId) return;
    ready.add(r.rank);
    totalSteps = r.totalSteps;
    if (r.rank === 0) sizes = { train: r.trainExamples, eval: r.evalExamples };
    if (ready.size === members.worldSize) {
      lastComplete = r.startStep;
      setPhase('training');
      control({ start: { startStep: r.startStep } });
    }
  });

  // 9. liveness
  bus.subscribe(subj.heartbeat, 'Heartbeat', (h) => members.heartbeat(h));
  const watchdog = setInterval(() => {
    o.events?.workersAlive?.(members.alive(job.cluster.heartbeatTimeoutMs), members.worldSize);
    if (phase === 'loading' || phase === 'training') control({ alive: { step: lastComplete } });
    if (phase !== 'loading' && phase !== 'training' && phase !== 'finishing') return;
    const late = members.late(job.cluster.heartbeatTimeoutMs);
    if (late) fail(late.rank, `no heartbeat for ${Math.round(late.ageMs)} ms (timeout ${job.cluster.heartbeatTimeoutMs} ms): the process is gone or stuck`);
  }, Math.max(100, Math.floor(job.cluster.heartbeatIntervalMs / 2)));
  bus.subscribe(subj.failed, 'Failed', (f) => {
    if (f.runId !== runId) return;
    if (f.lostRank >= 0) fail(f.lostRank, `lost (reported by rank ${f.rank}): ${f.error}`);
    else fail(f.rank, f.error);
  });

  // 6. steps
  bus.subscribe(subj.step, 'StepReport', async (r) => {
    if (r.runId !== runId) return;
    members.alsoAlive(r.rank); // a report is as good as a heartbeat
    const at = stepReports.get(r.step) ?? new Map();
    stepReports.set(r.step, at.set(r.rank, r));
    if (at.size < members.worldSize) return;
    stepReports.delete(r.step);
    const all = [...at.values()];
    const r0 = at.get(0)!;
    lastComplete = Math.max(lastComplete, r.step);
    lastLoss = r0.loss;
    const tokens = all.reduce((a, x) => a + x.inputTokens, 0);
    const seconds = Math.max(...all.map((x) => x.computeMs + x.reduceMs)) / 1000;
    const tokensPerSecond = Math.round(tokens / seconds);
    o.events?.step?.({ step: r.step, loss: r0.loss, lr: r0.lr, gradNorm: r0.gradNorm, tokens, samples: all.reduce((a, x) => a + x.samples, 0), tokensPerSecond });
    if (r.step % Math.max(1, Math.round(totalSteps / 10)) === 0 || r.step === totalSteps) {
      log(`[coordinator] step ${r.step}/${totalSteps} loss ${r0.loss.toFixed(4)} ${tokensPerSecond} tok/s`);
    }
    await record({
      type: 'train', step: r.step, loss: r0.loss, lr: r0.lr, grad_norm: r0.gradNorm, count: r0.count, tokens_per_s: tokensPerSecond,
      workers: all.length, tokens, time_ms: Math.round(performance.now() - started),
      // The rank that arrives last waits least: min reduce time ~ the collective itself, max ~ plus skew.
      compute_ms: Math.round(Math.max(...all.map((x) => x.computeMs))), reduce_ms_min: Math.round(Math.min(...all.map((x) => x.reduceMs))),
      reduce_ms: Math.round(Math.max(...all.map((x) => x.reduceMs))),
    });
    if (r0.paramHash) {
      const groups = new Map<string, number[]>();
      for (const x of all) groups.set(x.paramHash, [...(groups.get(x.paramHash) ?? []), x.rank]);
      o.events?.hashCheck?.(groups.size === 1);
      if (groups.size > 1) {
        const desc = [...groups].map(([h, ranks]) => `ranks ${ranks.join(',')}: ${h}`).join('; ');
        fail(-1, `replica parameters diverged at step ${r.step} (${desc})`);
      }
    }
  });

  // 7. evaluation
  bus.subscribe(subj.eval, 'EvalReport', async (e) => {
    if (e.runId !== runId) return;
    const at = evalReports.get(e.step) ?? new Map<number, EvalState>();
    evalReports.set(e.step, at.set(e.rank, JSON.parse(e.stateJson)));
    if (at.size < members.worldSize) return;
    evalReports.delete(e.step);
    const merged = [...at.keys()].sort((a, b) => a - b).map((k) => at.get(k)!).reduce(mergeEvalStates);
    const r = evalResult(merged);
    lastEval = r;
    if (e.step === 0) baseEval = r;
    o.events?.eval?.(e.step, r);
    await record({ type: 'eval', step: e.step, ...r });
    log(`[coordinator] step ${e.step} eval: ${Object.entries(r).map(([k, v]) => `${k} ${+v.toFixed(4)}`).join(', ')}`);
    let stop = false;
    if (stopper && e.step > 0 && e.step < totalSteps) {
      try {
        stop = stoppedEarly = stopper.update(r);
      } catch (err) {
        return fail(-1, (err as Error).message);
      }
    }
    const { best, badEvals } = stopper?.state() ?? { best: NaN, badEvals: 0 };
    control({ evalDecision: { step: e.step, stop, best, badEvals } });
  });

  // 8. checkpoints
  bus.subscribe(subj.checkpoint, 'CheckpointReport', (c) => {
    if (c.runId !== runId) return;
    lastCheckpointStep = c.step;
    o.events?.checkpoint?.(c.step);
    log(`[coordinator] checkpoint step ${c.step}: ${c.path}`);
  });

  // 10. done
  let finalModelDir = join(job.outputDir, 'final');
  bus.subscribe(subj.done, 'Done', async (d) => {
    if (d.runId !== runId) return;
    done.add(d.rank);
    if (d.rank === 0 && d.finalModelDir) finalModelDir = d.finalModelDir;
    if (done.size < members.worldSize || phase === 'failed') return;
    setPhase('finishing');
    const finalEval = lastEval;
    await writeReports(job.outputDir, {
      job: job.name, run_id: runId, model: job.modelDir, task: job.task, workers: members.worldSize, steps: lastComplete, stopped_early: stoppedEarly,
      data: sizes, base_eval: baseEval, final_eval: finalEval, seconds: +((performance.now() - started) / 1000).toFixed(1), final_model: finalModelDir,
    }, history);
    control({ shutdown: {} });
    setPhase('done');
    settle.resolve({ runId, steps: lastComplete, baseEval, finalEval, stoppedEarly, finalModelDir });
  });

  bus.subscribe(subj.status, 'StatusRequest', (_req, reply) => {
    if (!reply) return;
    bus.respond(reply, 'StatusReply', {
      job: job.name, runId, phase, step: lastComplete, totalSteps, worldSize: members.worldSize, workersAlive: members.alive(job.cluster.heartbeatTimeoutMs),
      lastLoss, workers: members.status(), lastEvalJson: lastEval ? JSON.stringify(lastEval) : '', lastCheckpointStep, error: '',
    });
  });

  log(`[coordinator] job ${job.name}: waiting for ${job.cluster.workers} workers${resumeFrom ? `, resuming from ${resumeFrom}` : ''}`);
  try {
    return await finished;
  } finally {
    clearTimeout(joinTimer);
    clearInterval(watchdog);
    await bus.flush().catch(() => {});
    await bus.close();
  }
}
