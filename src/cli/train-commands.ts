/** `ringtune init`, `ringtune train`, `ringtune eval`. */
import { access, mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { compileJob, loadJobFile, threadsFor, type DataFormat, type Threads } from '../config/compile.ts';
import { jobTemplate } from '../config/template.ts';
import { InputError } from '../errors.ts';
import { hubRefOf } from '../hub/hub-id.ts';
import { hubOptionsFromEnv } from '../hub/hub-options.ts';
import { resolveJobModel } from '../hub/resolve.ts';
import { configFromHF, taskFromArchitectures, type Task } from '../model/config.ts';
import { loadModel, readConfigJson } from '../model/model-dir.ts';
import { loadWithAdapter, resolveModelArgs } from '../model/peft.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { inferenceMaxLength } from '../model/truncation.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { classificationReport } from '../eval/classification-report.ts';
import { evalResult } from '../eval/eval-state.ts';
import { checkPredictionsTarget, writePredictions, type Prediction } from '../eval/predictions.ts';
import { evalState } from '../train/evaluate.ts';
import { train } from '../train/loop.ts';
import { closeCache } from '../data/prepared-cache.ts';
import { prepareCachedRun } from '../train/prepare.ts';
import { action, ADAPTER_HELP, allCores, BACKEND_HELP, intArg, MODEL_HELP, modelDirArg, overridesOf, startBackend, stopOnSignals, threadsOption, withOverrides } from './common.ts';
import { stringifyRecord } from '../run/record-json.ts';

const FORMATS = ['text', 'prompt-completion', 'messages', 'label'];
/** The job fields `ringtune eval` fills from its flags: problems and hints name the flag the user typed. */
const EVAL_FLAGS = {
  'data.format': '--format', 'data.max_seq_len': '--max-seq-len', 'data.on_bad_record': '--on-bad-record', 'training.global_batch': '--batch',
  'training.micro_batch': '--batch', 'eval.metrics': '--metrics', 'eval.generate_max_tokens': '--max-new-tokens', 'eval.generate_max_examples': '--max-examples',
};

export function registerTrainCommands(program: Command): void {
  program
    .command('init <dir>')
    .description('write DIR/job.yaml with every option and its default, commented')
    .option('--model <dir>', 'base model directory, or a hub model org/name[@revision]', 'model')
    .option('--train <file>', 'training data (JSONL or CSV)', 'train.jsonl')
    .option('--eval <file>', 'evaluation data')
    .option('--format <format>', FORMATS.join(' | '), 'text')
    .option('--force', 'replace an existing job.yaml')
    .action(action(async (dir: string, o: { model: string; train: string; eval?: string; format: string; force?: boolean }) => {
      if (!FORMATS.includes(o.format)) throw new InputError(`--format must be one of ${FORMATS.join(', ')}`);
      const file = join(dir, 'job.yaml');
      if (!o.force && (await access(file).then(() => true, () => false))) throw new InputError(`${file} exists; pass --force to replace it`);
      await mkdir(dir, { recursive: true });
      const rel = (p: string) => relative(resolve(dir), resolve(p)) || '.';
      await writeFileAtomic(file, jobTemplate({ model: hubRefOf(o.model, resolve(o.model)) ? o.model : rel(o.model), train: rel(o.train), eval: o.eval && rel(o.eval), format: o.format as DataFormat }));
      console.log(`wrote ${file}; edit it, then: ringtune train ${file}`);
    }));

  withOverrides(program
    .command('train <job>'))
    .description('fine-tune on this process as the job spec says (ringtune local runs it on a cluster)')
    .option('--resume', 'continue from the latest checkpoint')
    .option('--overwrite', 'start over even if checkpoints exist')
    .option('--dry-run', 'validate the job, model and data, print the plan, train nothing')
    .option('--backend <name>', `${BACKEND_HELP} (overrides the job spec)`)
    .addOption(threadsOption())
    .action(action(async (jobFile: string, o: { resume?: boolean; overwrite?: boolean; dryRun?: boolean; backend?: string; threads?: Threads; output?: string; set?: string[] }) => {
      // The hub model (if `model:` names one) is fetched before anything reads the model directory.
      const job = await resolveJobModel(await loadJobFile(jobFile, overridesOf(o)), hubOptionsFromEnv());
      await startBackend(o.backend ?? (job.backend === 'auto' ? undefined : job.backend), threadsFor(o.threads, job.threads, allCores()));
      if (o.dryRun) {
        // Through the prepared-dataset cache, as training reads it: a dry run builds it (or finds it)
        // and the counts are the cache's, so the run that follows starts without tokenising.
        const { data } = await prepareCachedRun(job);
        const s = data.stats;
        closeCache(data);
        console.log(JSON.stringify({
          job: job.name, task: job.task, model: job.modelDir, train: data.train.length, eval: data.eval.length, skipped: data.skipped.length, labels: data.labels, output: job.outputDir,
          cache: data.dir, cache_built: data.built, records: s.records, tokens: s.tokens, truncated: s.truncated,
        }, null, 2));
        return;
      }
      const signals = stopOnSignals();
      const r = await train(job, { resume: o.resume, overwrite: o.overwrite, stop: signals.stop }).finally(signals.dispose);
      if (r.stoppedBy) {
        // The loop logged where it stopped and how to resume; nothing final was written.
        console.log(stringifyRecord({ steps: r.steps, stopped_by: r.stoppedBy.reason, checkpoint: r.stoppedBy.checkpoint ?? null, base_eval: r.baseEval }, 2));
        process.exit(signals.exitCode() ?? 1);
      }
      console.log(stringifyRecord({ steps: r.steps, stopped_early: r.stoppedEarly, base_eval: r.baseEval, final_eval: r.finalEval, final_model: r.finalModelDir, report: join(job.outputDir, 'report.html') }, 2));
    }));

  program
    .command('eval')
    .description('evaluate a model directory on a dataset (loss/perplexity, or accuracy/F1 for labels)')
    .requiredOption('--model <dir>', MODEL_HELP)
    .option('--adapter <dir>', ADAPTER_HELP)
    .requiredOption('--data <file>', 'JSONL or CSV dataset')
    .option('--format <format>', FORMATS.join(' | '), 'text')
    .option('--max-seq-len <n>', "tokens per example (default: the model's own limit, as classify and serve cut)", intArg(2))
    .option('--batch <n>', 'examples per forward pass', intArg(1), 16)
    .option('--on-bad-record <mode>', 'fail | skip', 'fail')
    .option('--metrics <names>', 'also generate completions and score them: bleu,rouge,exact_match (prompt-completion or messages data)')
    .option('--max-new-tokens <n>', 'tokens generated per example for --metrics', intArg(1), 48)
    .option('--max-examples <n>', 'examples generated for --metrics', intArg(1), 100)
    .option('--predictions <file>', 'also write one JSON line per example: id (file:line), label, predicted, scores (classifier) or loss, tokens (+ generated, reference with --metrics) (causal LM); - for stdout')
    .option('--overwrite', 'replace an existing --predictions file')
    .option('--backend <name>', BACKEND_HELP)
    .addOption(threadsOption('all cores', false))
    .action(action(async (o: { model: string; adapter?: string; data: string; format: string; maxSeqLen?: number; batch: number; onBadRecord: string; metrics?: string; maxNewTokens: number; maxExamples: number; predictions?: string; overwrite?: boolean; backend?: string; threads?: Threads }) => {
      const { base, adapter } = await resolveModelArgs(resolve(await modelDirArg(o.model)), o.adapter && resolve(o.adapter), modelDirArg);
      // By default eval cuts where classify and serve do (the model's positions, or the tokenizer's
      // model_max_length if smaller), so the reported numbers describe the model as deployed.
      const maxSeqLen = o.maxSeqLen ?? inferenceMaxLength(configFromHF(await readConfigJson(base), join(base, 'config.json')).maxPositions,
        await Tokenizer.fromDir(base));
      const job = compileJob({
        model: base, data: { train: resolve(o.data), format: o.format, max_seq_len: maxSeqLen, eval_fraction: 0, on_bad_record: o.onBadRecord },
        training: { max_steps: 1, global_batch: o.batch, micro_batch: o.batch },
        eval: { metrics: o.metrics?.split(',').map((m) => m.trim()).filter(Boolean), generate_max_tokens: o.maxNewTokens, generate_max_examples: o.maxExamples },
      }, 'ringtune eval', { flags: EVAL_FLAGS });
      if (o.predictions) await checkPredictionsTarget(o.predictions, !!o.overwrite);
      await startBackend(o.backend, threadsFor(o.threads, undefined, allCores()));
      // The data file through its prepared-dataset cache (the job's training split): scored one batch at a time.
      const { data, padId, labels, generation } = await prepareCachedRun(job);
      const use = { command: 'ringtune eval', otherCommand: `ringtune eval --format ${job.task === 'classification' ? 'text' : 'label'}` };
      const { model, missingHeads } = adapter ? await loadWithAdapter(base, adapter, { task: job.task, use }, { labels }) : await loadModel(job.modelDir, { task: job.task, labels });
      if (!adapter) checkEvalHead(job.modelDir, await readConfigJson(job.modelDir), job.task, o.format, missingHeads, () => model.dispose());
      const predictions: Prediction[] = [];
      const state = await evalState(model, data.train, o.batch, padId, undefined, generation, o.predictions ? (p) => predictions.push(p) : undefined);
      const classification = classificationReport(state, model.config.id2label);
      if (o.predictions) await writePredictions(o.predictions, predictions);
      const summary = { model: job.modelDir, ...(adapter ? { adapter } : {}), data: job.data.trainPath, examples: data.train.length, skipped: data.skipped.length, ...evalResult(state), classification, predictions: o.predictions };
      // With predictions on stdout the summary goes to stderr, so stdout stays JSONL.
      (o.predictions === '-' ? console.error : console.log)(stringifyRecord(summary, 2));
      model.dispose();
      closeCache(data);
    }));
}

/**
 * eval loads the model with the task its --format needs; a directory of the other task, or one whose
 * checkpoint lacks that head, would be scored through a head made up at load (random numbers), as
 * classify and generate refuse to (model/head-check.ts).
 */
function checkEvalHead(dir: string, json: Record<string, unknown>, needs: Task, format: string, missingHeads: readonly string[], release: () => void): void {
  const own = taskFromArchitectures(json);
  const what = (t: Task) => (t === 'classification' ? 'a sequence classifier' : 'a causal language model');
  let problem: string | undefined;
  if (own && own !== needs) {
    const arch = (json.architectures as unknown[])[0];
    problem = `${dir} is ${what(own)} (${String(arch)}): --format ${format} evaluates ${what(needs)}; ` +
      `use --format ${own === 'classification' ? 'label' : 'text, prompt-completion or messages'}`;
  } else if (missingHeads.length) {
    problem = `${dir} has no trained head weights (${missingHeads.join(', ')} missing from its checkpoint): eval would score a random head. Fine-tune it first (ringtune train)`;
  }
  if (!problem) return;
  release();
  throw new InputError(problem);
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('the main job on this machine: pre-train a small base model, fine-tune it on a domain with a local cluster, compare with the base and with training from scratch')
    .option('--dir <dir>', 'working directory (replaced)', 'runs/demo')
    .option('--workers <n>', 'worker processes', intArg(1), 2)
    .option('--pretrain-steps <n>', 'pre-training steps', intArg(1), 300)
    .option('--finetune-steps <n>', 'fine-tuning (and from-scratch) steps', intArg(1), 80)
    .addOption(new Option('--backend <name>', BACKEND_HELP).env('RINGTUNE_BACKEND'))
    .action(action(async (o: { dir: string; workers: number; pretrainSteps: number; finetuneSteps: number; backend?: string }) => {
      await startBackend(o.backend);
      const { runDemo } = await import('../demo/demo.ts');
      await runDemo({ dir: o.dir, workers: o.workers, pretrainSteps: o.pretrainSteps, finetuneSteps: o.finetuneSteps, log: (l) => console.error(l) });
    }));
}
