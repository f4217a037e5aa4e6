/**
 * Parameter specs (internal name, shape, initialiser) and the parameter map the layers read.
 * Internal layouts are chosen for speed: every matrix is stored (in, out) so the forward pass is a
 * plain x @ W; the hf-keys tables convert to and from Hugging Face's layouts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RingtuneError } from '../errors.ts';
import { Rng } from '../util/rng.ts';

export type Init = 'normal' | 'zeros' | 'ones';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** Standard deviation for 'normal' (HF initializer_range 0.02 unless scaled). */
  std?: number;
  /** A task head (lm_head, score, classifier, pooler): initialised fresh when a base checkpoint lacks it. */
  head?: boolean;
  /** May be absent from a checkpoint (e.g. Qwen2 has q/k/v biases but no o_proj bias). */
  optional?: boolean;
}

export type Params = ReadonlyMap<string, tf.Tensor>;

export function param<R extends tf.Rank>(p: Params, name: string): tf.Tensor<R> {
  const t = p.get(name);
  if (!t) throw new RingtuneError(`model parameter "${name}" is missing (internal error: specs and forward disagree)`);
  return t as tf.Tensor<R>;
}

export function optionalParam<R extends tf.Rank>(p: Params, name: string): tf.Tensor<R> | undefined {
  return p.get(name) as tf.Tensor<R> | undefined;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Fills a spec's initial values from the seeded generator (identical on every backend). */
export function initialValues(spec: ParamSpec, rng: Rng): Float32Array {
  const data = new Float32Array(numel(spec.shape));
  if (spec.init === 'ones') data.fill(1);
  else if (spec.init === 'normal') {
    const std = spec.std ?? 0.02;
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  }
  return data;
}
