/**
 * Completions of one model for every prompt, with the decoding of `ringtune generate`: the prompt
 * ids as HF builds them (model/prompt.ts), greedy unless a temperature is given, stopping at the
 * model's or tokenizer's EOS, special tokens left out of the text. With sampling, prompt i uses seed
 * `seed + i` for every model, so models are compared on the same random draws.
 */
import { InputError } from '../errors.ts';
import { generate } from '../model/generate.ts';
import type { Model } from '../model/model.ts';
import { promptIds } from '../model/prompt.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import type { Completion, PromptEntry } from './blind.ts';

export interface SampleOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  /** Wrap each prompt as a user message with the tokenizer's chat template. */
  chat: boolean;
  /** Add the tokenizer's specials (a Llama <s>) to a plain prompt, as HF tokenizer(prompt). */
  addSpecialTokens: boolean;
}

export async function completeAll(
  name: string, lm: { model: Model; tok: Tokenizer }, prompts: ReadonlyArray<PromptEntry & { where: string }>, o: SampleOptions,
): Promise<Completion[]> {
  const { model, tok } = lm;
  const stopIds = [model.config.eosTokenId, tok.eosTokenId].filter((x): x is number => x !== undefined);
  const out: Completion[] = [];
  for (const [i, p] of prompts.entries()) {
    const prompt = o.chat ? { messages: [{ role: 'user', content: p.text }] } : { text: p.text };
    let ids = promptIds(tok, prompt, { addSpecialTokens: o.chat ? false : o.addSpecialTokens });
    if (ids.length === 0 && tok.bosTokenId !== undefined) ids = [tok.bosTokenId];
    try {
      const g = await generate(model, ids, {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed + i, stopIds,
      });
      out.push({ model: name, prompt: i, completion: tok.decode(g.ids, { skipSpecialTokens: true }), stoppedBy: g.stoppedBy });
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`--prompts ${p.where} (model ${name}): ${err.message}`, { cause: err });
      throw err;
    }
  }
  return out;
}
