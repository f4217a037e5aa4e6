/**
 * `ringtune samples` (completions of several models, blinded into a rating sheet) and
 * `ringtune ratings import` (the filled-in sheets un-blinded into scores, win rates and agreement).
 * docs/human-eval.md describes the workflow and the statistics.
 */
import { access, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { threadsFor, type Threads } from '../config/compile.ts';
import { InputError } from '../errors.ts';
import { blind, type Completion } from '../humaneval/blind.ts';
import { readKey } from '../humaneval/key.ts';
import { parseModelSpecs } from '../humaneval/models-flag.ts';
import { readPrompts } from '../humaneval/prompts.ts';
import { ratingsHtml, ratingsMarkdown } from '../humaneval/ratings-report.ts';
import { summarize } from '../humaneval/ratings.ts';
import { completeAll } from '../humaneval/samples.ts';
import { DEFAULT_CRITERIA, DEFAULT_SCALE, parseCriteria, parseScale } from '../humaneval/sheet-format.ts';
import { sheetHtml } from '../humaneval/sheet-html.ts';
import { readSheets, sheetCsv } from '../humaneval/sheet.ts';
import { loadModelWithHead } from '../model/head-check.ts';
import { loadWithAdapter, resolveModelArgs, tokenizerDir } from '../model/peft.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { OUTPUT_NAMES } from '../run/outputs.ts';
import { setHumanRatingsSection } from '../run/report.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { action, allCores, BACKEND_HELP, floatArg, intArg, modelDirArg, startBackend, threadsOption } from './common.ts';

export const SAMPLE_FILES = { key: 'key.json', csv: 'sheet.csv', html: 'sheet.html' } as const;
export const RATINGS_FILES = { json: 'ratings.json', md: 'ratings.md' } as const;

/** Refuses to replace any of `names` in `dir` unless `overwrite` (no silent overwrite). */
async function checkTargets(dir: string, names: readonly string[], overwrite: boolean, flag: string): Promise<void> {
  if (overwrite) return;
  const present = new Set(await readdir(dir).catch(() => [] as string[]));
  const clash = names.filter((n) => present.has(n));
  if (clash.length > 0) throw new InputError(`${flag} ${dir} holds ${clash.join(', ')} already; pass --overwrite to replace, or choose another ${flag}`);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerHumanEvalCommands(program: Command): void {
  program
    .command('samples')
    .description('generate completions of several models for the same prompts and write a blind rating sheet (sheet.csv, sheet.html) with the key that un-blinds it (key.json)')
    .requiredOption('--models <spec...>', 'models to compare: DIR or NAME=DIR each (DIR as generate --model takes it); the same DIR twice needs two names')
    .requiredOption('--prompts <file>', 'prompts: JSONL {"prompt" (or "text"), "id"?} per line, or plain text, one prompt per line')
    .option('--adapter <name=dir>', 'a LoRA adapter applied to the model called NAME (repeatable), e.g. --models base=M tuned=M --adapter tuned=runs/lora/final', collect)
    .option('--out <dir>', 'where sheet.csv, sheet.html and key.json go', 'humaneval')
    .option('--overwrite', 'replace sheet.csv, sheet.html and key.json already in --out')
    .option('--criteria <list>', 'comma-separated rating criteria', DEFAULT_CRITERIA.join(','))
    .option('--scale <min-max>', 'integer scores from MIN (worst) to MAX (best)', `${DEFAULT_SCALE.min}-${DEFAULT_SCALE.max}`)
    .option('--max-new-tokens <n>', 'new tokens per completion at most', intArg(1), 64)
    .option('--temperature <t>', '0 = greedy', floatArg(0, 100), 0)
    .option('--top-k <k>', 'sample from the k most likely tokens (0 = all)', intArg(0), 0)
    .option('--top-p <p>', 'nucleus sampling mass', floatArg(0, 1), 1)
    .option('--seed <n>', 'seed of the blind shuffle (and of sampling: prompt i uses seed + i)', intArg(0), 0)
    .option('--chat', "wrap each prompt as a user message with the tokenizer's chat template")
    .option('--no-add-special-tokens', "do not add the tokenizer's special tokens (a Llama <s>) to plain prompts")
    .option('--backend <name>', BACKEND_HELP)
    .addOption(threadsOption('all cores', false))
    .action(action(async (o: {
      models: string[]; prompts: string; adapter?: string[]; out: string; overwrite?: boolean; criteria: string; scale: string; maxNewTokens: number;
      temperature: number; topK: number; topP: number; seed: number; chat?: boolean; addSpecialTokens: boolean; backend?: string; threads?: Threads;
    }) => {
      const models = parseModelSpecs(o.models, o.adapter);
      const criteria = parseCriteria(o.criteria);
      const scale = parseScale(o.scale);
      const prompts = await readPrompts(o.prompts);
      await checkTargets(o.out, Object.values(SAMPLE_FILES), !!o.overwrite, '--out');
      await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      const generation = { max_new_tokens: o.maxNewTokens, temperature: o.temperature, top_k: o.topK, top_p: o.topP, chat: !!o.chat, add_special_tokens: o.addSpecialTokens };
      const completions: Completion[] = [];
      for (const m of models) {
        console.error(`[samples] ${m.name}: ${prompts.length} prompts`);
        const lm = await loadCausalLm(m.model, m.adapter ?? undefined);
        try {
          completions.push(...await completeAll(m.name, lm, prompts, { ...o, chat: !!o.chat }));
        } finally {
          lm.model.dispose();
        }
      }
      const key = blind({ seed: o.seed, criteria, scale, generation, models, prompts: prompts.map(({ id, text }) => ({ id, text })), completions });
      await writeFileAtomic(join(o.out, SAMPLE_FILES.csv), sheetCsv(key));
      await writeFileAtomic(join(o.out, SAMPLE_FILES.html), sheetHtml(key));
      await writeFileAtomic(join(o.out, SAMPLE_FILES.key), JSON.stringify(key, null, 2) + '\n');
      console.log(`wrote ${join(o.out, SAMPLE_FILES.csv)} and ${join(o.out, SAMPLE_FILES.html)}: ${key.samples.length} samples (${models.length} models x ${prompts.length} prompts, set ${key.tag}), criteria ${criteria.join(', ')} (${scale.min}-${scale.max})`);
      console.log(`keep ${join(o.out, SAMPLE_FILES.key)} from the raters: it says which model wrote which sample. Import their sheets with: ringtune ratings import SHEETS... --key ${join(o.out, SAMPLE_FILES.key)}`);
    }));

  const ratings = program.command('ratings').description('human ratings of `ringtune samples` sheets');
  ratings
    .command('import <sheets...>')
    .description("un-blind filled-in rating sheets: per model mean +- 95% CI, pairwise win rates, Krippendorff's alpha; writes ratings.json and ratings.md")
    .requiredOption('--key <file>', 'the key.json `ringtune samples` wrote with the sheet')
    .option('--out <dir>', "where ratings.json and ratings.md go (default: the key's directory)")
    .option('--overwrite', 'replace ratings.json and ratings.md already in --out')
    .option('--report <runDir>', "also put the results into that run's report.html, beside its automatic metrics")
    .action(action(async (sheets: string[], o: { key: string; out?: string; overwrite?: boolean; report?: string }) => {
      const key = await readKey(o.key);
      const out = o.out ?? dirname(o.key);
      await checkTargets(out, Object.values(RATINGS_FILES), !!o.overwrite, '--out');
      if (o.report) {
        // Checked before anything is written: a wrong --report should not leave half the outputs behind.
        const report = join(o.report, OUTPUT_NAMES.htmlReport);
        await access(report).catch(() => { throw new InputError(`--report ${o.report}: no ${report}; give the output directory of a finished run`); });
      }
      const rated = await readSheets(sheets, key);
      if (rated.length === 0) throw new InputError(`no ratings in ${sheets.join(', ')}: every score cell is empty`);
      const summary = summarize(key, rated);
      const md = ratingsMarkdown(summary);
      await writeFileAtomic(join(out, RATINGS_FILES.json), JSON.stringify(summary, null, 2) + '\n');
      await writeFileAtomic(join(out, RATINGS_FILES.md), md);
      console.log(md);
      console.error(`wrote ${join(out, RATINGS_FILES.json)} and ${join(out, RATINGS_FILES.md)}`);
      if (o.report) console.error(`added the human ratings to ${await setHumanRatingsSection(o.report, ratingsHtml(summary))}`);
    }));
}

/** A causal LM as `generate` loads it: --model (maybe an adapter directory) and an optional adapter. */
async function loadCausalLm(modelArg: string, adapterArg: string | undefined) {
  const { base, adapter } = await resolveModelArgs(await modelDirArg(modelArg), adapterArg, modelDirArg);
  const tok = await Tokenizer.fromDir(await tokenizerDir(base, adapter));
  const use = { command: 'ringtune samples', otherCommand: 'ringtune classify' };
  const { model } = adapter ? await loadWithAdapter(base, adapter, { task: 'causal-lm', use }) : await loadModelWithHead(base, 'causal-lm', use);
  return { model, tok };
}
