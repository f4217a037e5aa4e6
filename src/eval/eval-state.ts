/**
 * An evaluation as a mergeable state, so a distributed run adds the states of its ranks and gets
 * exactly the single-process numbers (bit for bit: every float sum is an exact sum, every count an
 * integer):
 *   causal LM:       loss = sum NLL / loss tokens, perplexity = exp(loss)
 *   classification:  loss = mean cross-entropy per example, accuracy, macro/micro F1
 *   generation:      the metrics the job listed (index.ts), over greedy completions
 * The state travels as JSON (EvalReport.state_json); `parseEvalState` checks what arrives. Running the
 * model to fill a state is train/evaluate.ts; this file never touches a model.
 */
import { InputError } from '../errors.ts';
import { classificationMetric, type ClassificationState } from './classification.ts';
import { exactSumAdd } from './exact-sum.ts';
import { generationEntry, GENERATION_METRICS, type GenerationMetric } from './index.ts';
import { perplexityMetric, type PerplexityState } from './perplexity.ts';

export type GenerationStates = Partial<Record<GenerationMetric, unknown>>;

export interface EvalState {
  /** Exact NLL sum and its count: loss tokens (causal LM) or examples (classification). */
  loss: PerplexityState;
  /** Batches whose loss was not finite (a diverged model): the loss is then NaN, not a number that hides it. */
  nonFinite: number;
  classification?: ClassificationState;
  generation?: GenerationStates;
}

export type EvalResult = Record<string, number>;

const lossMetric = perplexityMetric();
/** A bound on classes in a state from the wire: the confusion matrix is numClasses squared. */
const MAX_CLASSES = 4096;

export function emptyEvalState(o: { numClasses?: number; generation?: readonly GenerationMetric[] } = {}): EvalState {
  const state: EvalState = { loss: lossMetric.init(), nonFinite: 0 };
  if (o.numClasses !== undefined) state.classification = classificationMetric({ numClasses: o.numClasses }).init();
  if (o.generation?.length) state.generation = Object.fromEntries(o.generation.map((m) => [m, generationEntry(m).create().init()]));
  return state;
}

/** One batch's loss sum over `count` tokens (or examples). */
export function addLoss(state: EvalState, lossSum: number, count: number): void {
  if (Number.isFinite(lossSum)) exactSumAdd(state.loss.nllSum, lossSum);
  else state.nonFinite += 1;
  state.loss.tokens += count;
}

export function addClassification(state: EvalState, predicted: number, label: number): void {
  if (!state.classification) throw new Error('addClassification: the state was made without numClasses');
  classificationMetric({ numClasses: state.classification.numClasses }).update(state.classification, { predicted, label });
}

export function addGeneration(state: EvalState, hypothesis: string, reference: string): void {
  for (const [name, s] of Object.entries(state.generation ?? {})) {
    const entry = generationEntry(name as GenerationMetric);
    entry.create().update(s, entry.input(hypothesis, reference));
  }
}

/** a + b, neither modified; states from differently configured evaluations are an InputError. */
export function mergeEvalStates(a: EvalState, b: EvalState): EvalState {
  if (!!a.classification !== !!b.classification) throw new InputError('eval states disagree on classification: were the ranks given the same job?');
  const genA = Object.keys(a.generation ?? {}).sort().join(',');
  const genB = Object.keys(b.generation ?? {}).sort().join(',');
  if (genA !== genB) throw new InputError(`eval states disagree on generation metrics (${genA || 'none'} vs ${genB || 'none'})`);
  const out: EvalState = { loss: lossMetric.merge(a.loss, b.loss), nonFinite: a.nonFinite + b.nonFinite };
  if (a.classification && b.classification) {
    out.classification = classificationMetric({ numClasses: a.classification.numClasses }).merge(a.classification, b.classification);
  }
  if (a.generation && b.generation) {
    out.generation = Object.fromEntries(Object.keys(a.generation).map((name) => {
      const m = generationEntry(name as GenerationMetric).create();
      return [name, m.merge(a.generation![name as GenerationMetric], b.generation![name as GenerationMetric])];
    }));
  }
  return out;
}

export function evalResult(state: EvalState): EvalResult {
  const { meanNll } = lossMetric.compute(state.loss);
  const lossValue = state.nonFinite > 0 ? NaN : meanNll;
  if (state.classification) {
    const r = classificationMetric({ numClasses: state.classification.numClasses }).compute(state.classification);
    return {
      loss: lossValue, accuracy: r.accuracy, f1_macro: r.macro.f1, precision_macro: r.macro.precision, recall_macro: r.macro.recall,
      f1_micro: r.micro.f1, examples: state.loss.tokens,
    };
  }
  const out: EvalResult = { loss: lossValue, perplexity: Math.exp(lossValue), tokens: state.loss.tokens };
  for (const [name, s] of Object.entries(state.generation ?? {})) {
    const entry = generationEntry(name as GenerationMetric);
    Object.assign(out, entry.results(entry.create().compute(s)));
  }
  return out;
}

/**
 * An EvalState that came as JSON from another process: the shape is checked here and each metric's
 * merge checks its own state, so a malformed report is an InputError naming the field, not a crash
 * or a silently wrong number.
 */
export function parseEvalState(json: string, where: string): EvalState {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new InputError(`${where}: eval state is not JSON (${(err as Error).message})`);
  }
  const bad = (field: string) => new InputError(`${where}: eval state field ${field} is missing or malformed`);
  if (typeof v !== 'object' || v === null) throw bad('(top level)');
  const s = v as Record<string, unknown>;
  if (typeof s.loss !== 'object' || s.loss === null) throw bad('loss');
  if (typeof s.nonFinite !== 'number' || !Number.isInteger(s.nonFinite) || s.nonFinite < 0) throw bad('nonFinite');
  if (s.classification !== undefined && (typeof s.classification !== 'object' || s.classification === null)) throw bad('classification');
  if (s.generation !== undefined) {
    if (typeof s.generation !== 'object' || s.generation === null) throw bad('generation');
    for (const k of Object.keys(s.generation)) if (!(GENERATION_METRICS as string[]).includes(k)) throw bad(`generation.${k}`);
  }
  const state = v as EvalState;
  const numClasses = state.classification?.numClasses;
  if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > MAX_CLASSES)) throw bad('classification.numClasses');
  try {
    // Merging with an empty state of the same configuration runs every metric's own state checks.
    const empty = emptyEvalState({ numClasses, generation: Object.keys(state.generation ?? {}) as GenerationMetric[] });
    return mergeEvalStates(empty, state);
  } catch (err) {
    throw new InputError(`${where}: ${(err as Error).message}`);
  }
}
