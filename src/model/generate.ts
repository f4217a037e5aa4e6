/**
 * Autoregressive generation for the decoder families with a KV cache: the prompt is run once, then
 * each new token costs one position of attention over the cached keys/values.
 * Decoding: greedy when temperature is 0, else softmax(logits / T) restricted by top-k, then top-p
 * (nucleus, Holtzman et al. 2019), sampled from a seeded generator so runs are reproducible.
 * Each token ends with one macrotask yield: tfjs resolves data() as a microtask, so without it a long
 * generation would hold the event loop until its last token (a server's /healthz, a client's
 * disconnect and `signal` would all wait; docs/architecture.md "Liveness inside a step").
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import type { LayerCache } from './layers/attention.ts';
import type { Model } from './model.ts';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (default). */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  seed?: number;
  /** Token ids that end generation (default: the model's eos). Not included in the output. */
  stopIds?: readonly number[];
  onToken?: (id: number) => void;
  /** Checked before every token: once aborted, generation returns what it has, stoppedBy 'cancelled'. */
  signal?: AbortSignal;
}

export type StopReason = 'eos' | 'max_tokens' | 'max_positions' | 'cancelled';

export interface Generation {
  ids: number[];
  stoppedBy: StopReason;
}

/**
 * Why a prompt of `promptTokens` cannot be generated from, or undefined when it can. Generation does
 * not truncate (src/model/truncation.ts): cutting a prompt changes what is asked, so a prompt that
 * fills the model's positions is refused, by serve and the CLI alike.
 */
export function promptTooLong(promptTokens: number, maxPositions: number): string | undefined {
  if (promptTokens < maxPositions) return undefined;
  return `prompt has ${promptTokens} tokens; the model allows ${maxPositions} positions for prompt and generated tokens together, ` +
    'and prompts are not truncated: shorten the prompt';
}

/** Picks the next token from one row of logits. Exported for tests. */
export function pickToken(logits: Float32Array, o: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rng: Rng): number {
  const temperature = o.temperature ?? 0;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  if (o.topK && o.topK > 0) order = order.slice(0, o.topK);
  const max = logits[order[0]];
  const weights = order.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let keep = order.length;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    for (keep = 0; keep < order.length && acc < topP * total; keep++) acc += weights[keep];
  }
  const kept = weights.slice(0, keep).reduce((a, b) => a + b, 0);
  let r = rng.next() * kept;
  for (let i = 0; i < keep; i++) {
    r -= weights[i];
    if (r < 0) return order[i];
  }
  return order[keep - 1];
}

export async function generate(model: Model, prompt: readonly number[], o: GenerateOptions): Promise<Generation> {
  if (prompt.length === 0) throw new InputError('generation needs a non-empty prompt (at least a BOS token)');
  const tooLong = promptTooLong(prompt.length, model.config.maxPositions);
  if (tooLong) throw new InputError(tooLong);
  const rng = new Rng(o.seed ?? 0);
  const stop = new Set(o.stopIds ?? (model.config.eosTokenId !== undefined ? [model.config.eosTokenId] : []));
  const out: number[] = [];
  let cache: LayerCache[] | undefined;
  let input = [...prompt];
  let offset = 0;
  try {
    while (out.length < o.maxNewTokens) {
      if (o.signal?.aborted) return { ids: out, stoppedBy: 'cancelled' };
      if (offset + input.length > model.config.maxPositions) return { ids: out, stoppedBy: 'max_positions' };
      const step = tf.tidy(() => {
        const r = model.forwardCached(tf.tensor2d([input], [1, input.length], 'int32'), offset, cache);
        r.cache.forEach((c) => { tf.keep(c.k); tf.keep(c.v); });
        return r;
      });
      const logits = (await step.logits.data()) as Float32Array;
      step.logits.dispose();
      if (cache) tf.dispose(cache.flatMap((c) => [c.k, c.v]));
      cache = step.cache;
      offset += input.length;
      const next = pickToken(logits, o, rng);
      if (stop.has(next)) return { ids: out, stoppedBy: 'eos' };
      out.push(next);
      o.onToken?.(next);
      input = [next];
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return { ids: out, stoppedBy: 'max_tokens' };
  } finally {
    if (cache) tf.dispose(cache.flatMap((c) => [c.k, c.v]));
  }
}
