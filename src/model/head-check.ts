/**
 * Commands that need a particular head check the model directory has it, before running anything:
 * `ringtune classify` and serve's /v1/classify need a sequence classifier, `ringtune generate` and
 * serve's completion routes a causal LM. Without the check, loading with a forced task builds the
 * missing head from random numbers and answers with confident nonsense (a causal LM "classified"
 * every text as LABEL_1).
 */
import { InputError } from '../errors.ts';
import { architectureName, type Task } from './config.ts';
import type { Model } from './model.ts';
import { loadModel, type LoadedModel } from './model-dir.ts';

/** A model directory whose head is not the one a command needs. Names the directory, what it is and what to use. */
export class WrongHeadError extends InputError {
  override readonly name: string = 'WrongHeadError';
  constructor(message: string, readonly dir: string, readonly has: Task, readonly needs: Task) {
    super(message);
  }
}

/** How the caller is named in messages: the command (or route) itself and the one that fits the other head. */
export interface HeadUse {
  /** e.g. "ringtune classify" or "/v1/classify". */
  command: string;
  /** What to use for a model of the other task, e.g. "ringtune generate" or "/v1/completions". */
  otherCommand: string;
}

const WHAT: Record<Task, string> = { 'causal-lm': 'a causal language model', classification: 'a sequence classifier' };

function describe(model: Model): string {
  const labels = model.task === 'classification' ? `, labels ${Object.values(model.config.id2label).join(', ')}` : '';
  return `${WHAT[model.task]} (${architectureName(model.config.family, model.task)}${labels})`;
}

/**
 * Throws WrongHeadError unless `model` (loaded from `dir` by its own config.json, no forced task)
 * has the `needs` head, trained: a head the checkpoint lacked (`missingHeads`) was made up at load.
 */
export function requireHead(model: Model, dir: string, needs: Task, use: HeadUse, missingHeads: readonly string[] = []): void {
  if (model.task !== needs) {
    throw new WrongHeadError(
      `${dir} is ${describe(model)}: ${use.command} needs ${WHAT[needs]}. Use ${use.otherCommand} for it` +
      (needs === 'classification' ? ', or fine-tune it into a classifier (task: classification, data with labels)' : ''),
      dir, model.task, needs,
    );
  }
  if (missingHeads.length) {
    throw new WrongHeadError(
      `${dir} is ${describe(model)} without trained head weights (${missingHeads.join(', ')} missing from its checkpoint): ` +
      `${use.command} would answer from a random head. Fine-tune it first (\`ringtune train\`)`,
      dir, model.task, needs,
    );
  }
}

/** loadModel by the directory's own config, then requireHead; the model is disposed when the check fails. */
export async function loadModelWithHead(dir: string, needs: Task, use: HeadUse): Promise<LoadedModel> {
  const loaded = await loadModel(dir);
  try {
    requireHead(loaded.model, dir, needs, use, loaded.missingHeads);
  } catch (err) {
    loaded.model.dispose();
    throw err;
  }
  return loaded;
}
