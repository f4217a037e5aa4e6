/**
 * The names of what a run leaves behind, in one place (every reader and writer uses these):
 *   <output>/metrics.jsonl      one JSON line per completed step and per evaluation (history.ts)
 *   <output>/final/             the fine-tuned model, Hugging Face layout; with method lora the adapter
 *                               directory in PEFT's layout (adapter_config.json, adapter_model.safetensors)
 *   <output>/eval_report.json   summary: data sizes, base and final evaluation, time (report.ts)
 *   <output>/report.html        the same with loss / metric curves, opens offline
 *   <checkpoint dir>/step-NNNNNNNN/{model/ (lora: adapter/), optimizer.safetensors, trainer_state.json, history.jsonl}
 *   <checkpoint dir>/latest     the name of the newest complete checkpoint of the run (trainer-state.ts)
 *   <checkpoint dir>/.step-NNNNNNNN.tmp-*   staging of a checkpoint being written (util/atomic.ts);
 *                               a leftover is a crash's, removed when the next run claims the dir
 */
import { join } from 'node:path';

export const OUTPUT_NAMES = {
  history: 'metrics.jsonl',
  finalModel: 'final',
  evalReport: 'eval_report.json',
  htmlReport: 'report.html',
} as const;

export const CHECKPOINT_NAMES = {
  latest: 'latest',
  trainerState: 'trainer_state.json',
  model: 'model',
  /** method lora: the adapter (PEFT layout) instead of model/; the base is the job's model. */
  adapter: 'adapter',
  optimizer: 'optimizer.safetensors',
  /** The run's train lines up to the checkpoint, as its writer saw them (history.ts says why). */
  history: 'history.jsonl',
} as const;

export const historyFile = (outputDir: string) => join(outputDir, OUTPUT_NAMES.history);
export const finalModelDir = (outputDir: string) => join(outputDir, OUTPUT_NAMES.finalModel);
