/** The job every chaos run trains: a tiny llama, elastic `on_loss: wait`, a checkpoint every 2 steps. */
import { makeElasticJob } from '../integration/elastic-helpers.ts';

export interface ChaosJob {
  file: string;
  name: string;
  totalSteps: number;
}

/**
 * `wait` with a replacement deadline far beyond any restart here, so every loss ends with the N-rank
 * ring restored (a deadline that passed would shrink the world, and the result would differ from the
 * fault-free run: docs/reliability.md). Checkpoints every 2 steps bound what a coordinator restart
 * from the checkpoint re-runs. `evalEvery`: workers whose coordinator died train on only up to the
 * next evaluation (they wait for its decision), so a short run cannot end before a restarted
 * coordinator takes it over, however fast the machine.
 */
export async function chaosJob(dir: string, o: { workers: number; steps: number; heartbeatTimeoutMs: number; name?: string; evalEvery?: number }): Promise<ChaosJob> {
  const name = o.name ?? 'chaos';
  const file = await makeElasticJob(dir, name, {
    workers: o.workers, maxSteps: o.steps, examples: 96, globalBatch: 12, microBatch: 2, checkpointEvery: 2, keep: 2, evalEvery: o.evalEvery,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs, elastic: { on_loss: 'wait', min_workers: 1, wait_timeout_ms: 600_000 },
  });
  return { file, name, totalSteps: o.steps };
}
