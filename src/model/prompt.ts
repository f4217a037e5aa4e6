/**
 * A prompt -> the ids generation starts from, as the Hugging Face ecosystem builds them, shared by
 * `ringtune generate`, `serve` and the demo (eval's prompts come from data preparation, which adds
 * the same specials: src/data/examples.ts):
 *   text      tokenizer(prompt)["input_ids"]: the post-processor's specials (a Llama <s>) + the text;
 *             GPT-2 and the byte-level tokenizers this project builds add nothing
 *   messages  apply_chat_template(messages, add_generation_prompt=True, tokenize=True): the template
 *             writes its own BOS into the text, so no specials are added by default
 * With addSpecialTokens the specials are never added twice (Tokenizer.encodeParts): a text that
 * already begins with the BOS, like a rendered chat template, keeps just its own.
 */
import { joinParts, type ChatMessage, type Tokenizer } from './tokenizer.ts';

export type Prompt = { text: string } | { messages: ChatMessage[] };

export interface PromptOptions {
  /** Add the post-processor's specials: default true for text (HF tokenizer()), false for messages (apply_chat_template). */
  addSpecialTokens?: boolean;
}

export function promptIds(tok: Tokenizer, prompt: Prompt, opts: PromptOptions = {}): number[] {
  const chat = 'messages' in prompt;
  const text = chat ? tok.applyChatTemplate(prompt.messages, { addGenerationPrompt: true }) : prompt.text;
  return joinParts(tok.encodeParts(text, { addSpecialTokens: opts.addSpecialTokens ?? !chat }));
}
