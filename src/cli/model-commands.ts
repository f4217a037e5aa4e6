/** `ringtune model create|info`, `ringtune generate`, `ringtune classify`. */
import type { Command } from 'commander';
import { threadsFor, type Threads } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import type { Family, Task } from '../model/config.ts';
import { createModelDir } from '../model/create.ts';
import { generate } from '../model/generate.ts';
import { loadModelWithHead, type HeadUse } from '../model/head-check.ts';
import type { Model } from '../model/model.ts';
import { loadModel, readConfigJson } from '../model/model-dir.ts';
import { loadWithAdapter, mergeToDir, resolveModelArgs, tokenizerDir } from '../model/peft.ts';
import { presetChoices } from '../model/presets.ts';
import { promptIds } from '../model/prompt.ts';
import { encodeTruncated, inferenceMaxLength } from '../model/truncation.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { collateCls } from '../data/batch.ts';
import { checkPredictionsTarget, writePredictions } from '../eval/predictions.ts';
import { classifierOutputs } from '../train/evaluate.ts';
import { action, ADAPTER_HELP, allCores, BACKEND_HELP, floatArg, intArg, MODEL_HELP, modelDirArg, startBackend, threadsOption } from './common.ts';
import { readTextInput, type TextItem } from './text-input.ts';

/** --model [--adapter]: the base, or base + adapter merged in memory, with the head `needs` checked; the tokenizer next to the adapter, else the base's. */
async function loadForCommand(o: { model: string; adapter?: string }, needs: Task, use: HeadUse): Promise<{ model: Model; tok: Tokenizer }> {
  const { base, adapter } = await resolveModelArgs(await modelDirArg(o.model), o.adapter, modelDirArg);
  const tok = await Tokenizer.fromDir(await tokenizerDir(base, adapter));
  const { model } = adapter ? await loadWithAdapter(base, adapter, { task: needs, use }) : await loadModelWithHead(base, needs, use);
  return { model, tok };
}

export function registerModelCommands(program: Command): void {
  program
    .command('merge')
    .description('merge a LoRA adapter into its base: writes a full Hugging Face model directory (W += scale * B A; modules_to_save replace the base\'s tensors)')
    .requiredOption('--base <dir>', 'the base model directory the adapter was trained on')
    .requiredOption('--adapter <dir>', 'the adapter directory (adapter_config.json + adapter_model.safetensors)')
    .requiredOption('--output <dir>', 'the merged model directory (written atomically)')
    .option('--overwrite', 'replace an existing --output directory')
    .option('--backend <name>', BACKEND_HELP)
    .action(action(async (o: { base: string; adapter: string; output: string; overwrite?: boolean; backend?: string }) => {
      await startBackend(o.backend);
      const r = await mergeToDir(o.base, o.adapter, o.output, !!o.overwrite);
      console.log(`wrote ${o.output}: ${o.base} + LoRA ${o.adapter} (${r.targets} adapted modules, ${r.task})`);
    }));

  const model = program.command('model').description('create and inspect model directories');

  model
    .command('create')
    .description('write a randomly initialised model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--family <family>', 'gpt2 | llama | bert')
    .option('--preset <preset>', `size: ${presetChoices()}`, 'tiny')
    .requiredOption('--out <dir>', 'output model directory (replaced atomically)')
    .option('--task <task>', 'causal-lm | classification (bert: classification only)')
    .option('--labels <names>', 'comma-separated label names for classification')
    .option('--vocab-size <n>', 'override the preset vocabulary size', intArg(300))
    .option('--seed <n>', 'initialisation seed', intArg(0), 0)
    .option('--backend <name>', BACKEND_HELP)
    .action(action(async (o: { family: string; preset: string; out: string; task?: string; labels?: string; vocabSize?: number; seed: number; backend?: string }) => {
      if (!['gpt2', 'llama', 'bert'].includes(o.family)) throw new InputError(`--family must be gpt2, llama or bert, got "${o.family}"`);
      if (o.task && o.task !== 'causal-lm' && o.task !== 'classification') throw new InputError(`--task must be causal-lm or classification, got "${o.task}"`);
      await startBackend(o.backend);
      const labels = o.labels?.split(',').map((s) => s.trim()).filter(Boolean);
      const r = await createModelDir({
        family: o.family as Family, preset: o.preset, out: o.out, task: o.task as Task | undefined,
        labels, vocabSize: o.vocabSize, seed: o.seed,
      });
      console.log(`wrote ${o.out}: ${o.family}/${o.preset}, ${(r.numParams / 1e6).toFixed(2)}M parameters, vocab ${r.vocabSize}`);
    }));

  model
    .command('info <dir>')
    .description('print the architecture, size and tokenizer of a model directory or hub model org/name[@revision]')
    .action(action(async (arg: string) => {
      const dir = await modelDirArg(arg);
      await startBackend(undefined);
      const json = await readConfigJson(dir);
      const { model: m, missingHeads, ignored } = await loadModel(dir);
      const tok = await Tokenizer.fromDir(dir).catch(() => undefined);
      console.log(JSON.stringify({
        dir, architecture: (json.architectures as string[] | undefined)?.[0], family: m.config.family, task: m.task,
        parameters: m.numParams, layers: m.config.nLayers, dModel: m.config.dModel, heads: m.config.nHeads,
        kvHeads: m.config.nKvHeads, vocabSize: m.config.vocabSize, maxPositions: m.config.maxPositions,
        labels: m.task === 'classification' ? Object.values(m.config.id2label) : undefined,
        tokenizer: tok ? { vocabSize: tok.vocabSize, chatTemplate: !!tok.chatTemplate } : 'missing',
        missingHeads, ignoredTensors: ignored,
      }, null, 2));
      m.dispose();
    }));

  program
    .command('generate')
    .description('generate text from a causal-LM model directory')
    .requiredOption('--model <dir>', MODEL_HELP)
    .option('--adapter <dir>', ADAPTER_HELP)
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--chat', 'wrap the prompt as a user message with the tokenizer\'s chat template')
    .option('--no-add-special-tokens', 'do not add the tokenizer\'s special tokens (a Llama <s>) to a plain prompt, as HF tokenizer(prompt, add_special_tokens=False); --chat adds none anyway')
    .option('--max-tokens <n>', 'new tokens at most', intArg(1), 64)
    .option('--temperature <t>', '0 = greedy', floatArg(0, 100), 0)
    .option('--top-k <k>', 'sample from the k most likely tokens (0 = all)', intArg(0), 0)
    .option('--top-p <p>', 'nucleus sampling mass', floatArg(0, 1), 1)
    .option('--seed <n>', 'sampling seed', intArg(0), 0)
    .option('--backend <name>', BACKEND_HELP)
    .addOption(threadsOption('all cores', false))
    .action(action(async (o: { model: string; adapter?: string; prompt: string; chat?: boolean; addSpecialTokens: boolean; maxTokens: number; temperature: number; topK: number; topP: number; seed: number; backend?: string; threads?: Threads }) => {
      await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      const { model: m, tok } = await loadForCommand(o, 'causal-lm', { command: 'ringtune generate', otherCommand: 'ringtune classify' });
      const prompt = o.chat ? { messages: [{ role: 'user', content: o.prompt }] } : { text: o.prompt };
      // --chat: the template writes its own BOS; --no-add-special-tokens only turns off a plain prompt's.
      let ids = promptIds(tok, prompt, { addSpecialTokens: o.chat ? false : o.addSpecialTokens });
      if (ids.length === 0 && tok.bosTokenId !== undefined) ids = [tok.bosTokenId];
      const out: number[] = [];
      let printed = '';
      process.stdout.write(o.prompt);
      const r = await generate(m, ids, {
        maxNewTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
        stopIds: [m.config.eosTokenId, tok.eosTokenId].filter((x): x is number => x !== undefined),
        onToken: (id) => {
          out.push(id);
          // Decode the whole continuation each time: a byte-level token can end mid-character.
          const now = tok.decode(out, { skipSpecialTokens: true });
          if (!now.endsWith('\uFFFD')) {
            process.stdout.write(now.slice(printed.length));
            printed = now;
          }
        },
      });
      process.stdout.write(`${tok.decode(out, { skipSpecialTokens: true }).slice(printed.length)}\n`);
      console.error(`[${r.ids.length} tokens, stopped by ${r.stoppedBy}]`);
      m.dispose();
    }));

  program
    .command('classify')
    .description('classify texts with a sequence-classification model directory; prints one JSON line per text')
    .requiredOption('--model <dir>', MODEL_HELP)
    .option('--adapter <dir>', ADAPTER_HELP)
    .option('--text <text...>', 'one or more texts')
    .option('--input <file>', 'texts to classify, - for stdin: JSONL with a "text" field (name ends in .jsonl, or first character "{"), else one text per line')
    .option('--output <file>', 'write the JSON lines here (atomically) instead of stdout; - for stdout')
    .option('--overwrite', 'replace an existing --output file')
    .option('--batch <n>', 'texts per forward pass', intArg(1), 16)
    .option('--backend <name>', BACKEND_HELP)
    .addOption(threadsOption('all cores', false))
    .action(action(async (o: { model: string; adapter?: string; text?: string[]; input?: string; output?: string; overwrite?: boolean; batch: number; backend?: string; threads?: Threads }) => {
      if (!o.text === !o.input) throw new InputError('give the texts with either --text or --input FILE (- for stdin)');
      if (o.output) await checkPredictionsTarget(o.output, !!o.overwrite, '--output');
      const items: TextItem[] = o.input ? await readTextInput(o.input) : o.text!.map((text, i) => ({ text, where: `--text ${i + 1}` }));
      await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      const { model: m, tok } = await loadForCommand(o, 'classification', { command: 'ringtune classify', otherCommand: 'ringtune generate' });
      const lines = await classifyItems(m, tok, items, o.batch, !!o.input).finally(() => m.dispose());
      await writePredictions(o.output ?? '-', lines);
    }));
}

/**
 * `batch` texts per forward (eval's classifier forward, so the labels are eval's for the same
 * tokens); one output line per text: its id (JSONL input) or text, the label, scores high to low.
 */
async function classifyItems(m: Model, tok: Tokenizer, items: readonly TextItem[], batch: number, fromInput: boolean): Promise<object[]> {
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  // The truncation rule of classifyText and serve (model/truncation.ts): one text, one label everywhere.
  const maxLength = inferenceMaxLength(m.config.maxPositions, tok);
  const names = m.config.id2label;
  const lines: object[] = [];
  for (let start = 0; start < items.length; start += batch) {
    const chunk = items.slice(start, start + batch);
    const examples = chunk.map((it) => {
      const tokens = encodeTruncated(tok, it.text, maxLength);
      if (tokens.length === 0) throw new InputError(`${fromInput ? '--input ' : ''}${it.where}: ${JSON.stringify(it.text.slice(0, 60))} encodes to no tokens`);
      return { tokens, label: 0, source: it.where }; // label: a placeholder, read only for a loss nobody uses
    });
    const out = await classifierOutputs(m, collateCls(examples, padId), true);
    chunk.forEach((it, i) => {
      const ranked = out.probs[i].map((p, c) => ({ label: names[c], p })).sort((a, b) => b.p - a.p);
      lines.push({
        ...(it.id === undefined ? { text: it.text } : { id: it.id }), label: names[out.predicted[i]],
        scores: Object.fromEntries(ranked.map((r) => [r.label, +r.p.toFixed(4)])),
      });
    });
  }
  return lines;
}


export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('HTTP inference: /v1/completions, /v1/chat/completions (causal LM), /v1/classify (classifier)')
    .requiredOption('--model <dir>', MODEL_HELP)
    .option('--adapter <dir>', ADAPTER_HELP)
    .option('--port <port>', 'port (0 = any free port)', intArg(0), 8080)
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--max-queue <n>', 'requests that may wait behind the running one; more get 503 + Retry-After (default 64)', intArg(0))
    .option('--no-add-special-tokens', '/v1/completions: do not add the tokenizer\'s special tokens (a Llama <s>) to prompts unless a request sets "add_special_tokens": true')
    .option('--backend <name>', BACKEND_HELP)
    .addOption(threadsOption('all cores', false))
    .action(action(async (o: { model: string; adapter?: string; port: number; host: string; maxQueue?: number; addSpecialTokens: boolean; backend?: string; threads?: Threads }) => {
      await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      const { startInferenceServer } = await import('../serve/server.ts');
      const modelDir = await modelDirArg(o.model);
      const { base, adapter } = await resolveModelArgs(modelDir, o.adapter, modelDirArg);
      // A hub model is served under its id (its snapshot directory is named by a commit hash).
      const name = adapter ? undefined : modelDir === o.model ? undefined : o.model;
      const s = await startInferenceServer({ modelDir: base, adapterDir: adapter, name, port: o.port, host: o.host, maxQueue: o.maxQueue, addSpecialTokens: o.addSpecialTokens, log: (l) => console.error(l) });
      const stop = () => void s.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }));
}
