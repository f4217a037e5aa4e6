/**
 * What every trainer (single process or ring worker) builds before its first step: the model (from
 * the base directory or a checkpoint; with method lora the base plus a fresh or the checkpoint's
 * adapter), its flat parameter view (the trainable parameters only), the optimizer with the decay groups, the batch
 * plan and the schedule. One place, so both paths train the same way.
 * First, before any weights load, what training needs beyond prepare.ts's checks: a global batch the
 * training set can fill, and memory for gradients, optimizer state and the activations kept for backward.
 */
import type { CompiledJob } from '../config/compile.ts';
import { availableMemory, checkMemory, estimateMemory, type LoraMemory } from '../config/memory.ts';
import { checkBatchFits, type PreparedSizes } from '../data/dataset.ts';
import { resolveLora, type ResolvedLora } from '../model/lora-config.ts';
import { loraPlan } from '../model/lora.ts';
import { loadModel } from '../model/model-dir.ts';
import { paramSpecs, type Model } from '../model/model.ts';
import { numel } from '../model/params.ts';
import { attachNewAdapter } from '../model/peft.ts';
import { createOptimizer } from '../optim/create-optimizer.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import type { ScheduleConfig } from '../optim/lr-schedule.ts';
import { BatchPlan } from './batch-plan.ts';
import type { TrainerState } from '../run/trainer-state.ts';
import { readCheckpoint, restoreOptimizer } from './checkpoint.ts';
import { FlatParams } from './flat-params.ts';
import { readModelConfig } from './prepare.ts';

export interface TrainingSetup {
  model: Model;
  flat: FlatParams;
  optimizer: Optimizer;
  plan: BatchPlan;
  schedule: ScheduleConfig;
  startStep: number;
  restored?: TrainerState;
}

/** The checks training adds to prepare.ts's: run them before claiming or touching any output. */
export async function checkTraining(job: CompiledJob, data: PreparedSizes): Promise<void> {
  const t = job.training;
  checkBatchFits(job, data);
  const { config, file } = await readModelConfig(job);
  // LoRA names against this family's modules, before any output is touched (weights are not needed).
  const lora = job.lora ? loraMemory(config, job.task, jobLora(job, config.family)!, job.jobFile) : undefined;
  checkMemory(estimateMemory(config, job.task, { purpose: 'train', microBatch: t.microBatch, seqLen: job.data.maxSeqLen, optimizer: t, lora }), availableMemory(), job.jobFile, file);
}

/** What a LoRA run trains and materialises, counted from its plan (throws naming bad module names). */
export function loraMemory(config: Model['config'], task: Model['task'], lora: ResolvedLora, where: string): LoraMemory {
  const specs = paramSpecs(config, task);
  const { targets, saved } = loraPlan(config, task, specs, lora, where);
  const size = new Map(specs.map((sp) => [sp.name, numel(sp.shape)]));
  const adapter = targets.reduce((n, x) => n + lora.r * (x.inFeatures + x.outFeatures), 0);
  const whole = saved.reduce((n, r) => n + r.internal.reduce((m, name) => m + (size.get(name) ?? 0), 0), 0);
  const targetedWeights = targets.reduce((n, x) => n + x.inFeatures * x.outFeatures, 0);
  return { trainableParams: adapter + whole, targetedWeights };
}

/** The job's LoRA settings with the family's defaults; undefined for full fine-tuning. */
function jobLora(job: CompiledJob, family: Model['config']['family']): ResolvedLora | undefined {
  return job.lora && resolveLora(family, job.task, job.lora, job.jobFile);
}

export async function setupTraining(job: CompiledJob, data: PreparedSizes, resumeFrom?: string): Promise<TrainingSetup> {
  const t = job.training;
  await checkTraining(job, data);
  const { config } = await readModelConfig(job);
  const lora = jobLora(job, config.family);
  const restored = resumeFrom ? await readCheckpoint(resumeFrom, job.task, lora && { modelDir: job.modelDir, labels: data.labels, seed: t.seed, lora }) : undefined;
  let model = restored?.model;
  if (!model) {
    model = (await loadModel(job.modelDir, { task: job.task, labels: data.labels, seed: t.seed })).model;
    if (lora) attachNewAdapter(model, lora, t.seed, job.jobFile);
  }
  const plan = new BatchPlan(data.train.length, t.globalBatch, t.seed, { epochs: t.epochs, maxSteps: t.maxSteps });
  const schedule: ScheduleConfig = { name: t.schedule, peakLr: t.peakLr, warmupSteps: t.warmupSteps, totalSteps: plan.totalSteps, minLrRatio: t.minLrRatio };
  const flat = new FlatParams(model);
  await flat.readParams();
  const optimizer = createOptimizer(t, flat.size, flat.decayMask(t.noDecay));
  if (resumeFrom) await restoreOptimizer(resumeFrom, flat, optimizer);
  return { model, flat, optimizer, plan, schedule, startStep: restored?.state.step ?? 0, restored: restored?.state };
}
