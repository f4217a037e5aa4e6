/**
 * `npm start` / `ringtune demo`: the main job end to end on this machine, downloading nothing.
 *   1. build a small Llama-shaped base model and its tokenizer from the shipped general corpus
 *   2. pre-train it briefly on that corpus (a local cluster of 2 workers)
 *   3. fine-tune the pre-trained model on a domain dataset (marine weather bulletins), 2 workers
 *   4. train the same architecture from scratch on the domain with the same budget, 2 workers
 *   5. evaluate all three on held-out domain data and print the comparison
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadJobFile } from '../config/compile.ts';
import { runLocalCluster } from '../coordinator/local.ts';
import { activeBackend } from '../model/backend.ts';
import { InputError } from '../errors.ts';
import { createModelDir } from '../model/create.ts';
import { generate } from '../model/generate.ts';
import { loadModel } from '../model/model-dir.ts';
import { promptIds } from '../model/prompt.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { readDefaultCorpus } from '../model/tokenizer-build.ts';
import { evalResult } from '../eval/eval-state.ts';
import { evalState } from '../train/evaluate.ts';
import { finalModelDir } from '../run/outputs.ts';
import { closeCache } from '../data/prepared-cache.ts';
import { prepareCachedRun } from '../train/prepare.ts';
import { domainLines } from './domain-data.ts';

export interface DemoOptions {
  dir: string;
  workers: number;
  pretrainSteps: number;
  finetuneSteps: number;
  log: (line: string) => void;
}

function job(name: string, model: string, train: string, evalFile: string | undefined, steps: number, lr: number, workers: number, out: string) {
  return {
    name, model, output: out,
    data: { train, ...(evalFile ? { eval: evalFile } : {}), format: 'text', max_seq_len: 96, packing: true },
    training: { max_steps: steps, global_batch: 16, micro_batch: 8, lr, warmup_steps: Math.ceil(steps / 20), schedule: 'cosine', min_lr_ratio: 0.1, seed: 1 },
    eval: { every_n_steps: Math.max(10, Math.floor(steps / 4)) },
    cluster: { workers, heartbeat_timeout_ms: 15_000 },
  };
}

export async function runDemo(o: DemoOptions): Promise<void> {
  const dir = resolve(o.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;

  // Data: the shipped general corpus split into paragraphs; the domain generated with a fixed seed.
  const paragraphs = readDefaultCorpus().split(/\n\s*\n/).map((p) => p.replace(/\s+/g, ' ').trim()).filter((p) => p.length > 40);
  const general = paragraphs.map((text) => JSON.stringify({ text }));
  await writeFile(join(dir, 'general.jsonl'), general.join('\n') + '\n');
  await writeFile(join(dir, 'domain-train.jsonl'), domainLines(400, 11).join('\n') + '\n');
  await writeFile(join(dir, 'domain-test.jsonl'), domainLines(120, 12).join('\n') + '\n');
  o.log(`[demo] data: ${general.length} general paragraphs; 400 domain bulletins for training, 120 held out`);

  const base = join(dir, 'random-init');
  await createModelDir({ family: 'llama', preset: 'tiny', out: base, seed: 1, vocabSize: 1024, maxPositions: 128 });
  const run = async (name: string, spec: ReturnType<typeof job>) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, stringify(spec));
    o.log(`[demo] ${elapsed()}: ${name} (${spec.training.max_steps} steps, ${o.workers} workers)`);
    // Only the coordinator's progress and eval lines; everything else is shown if the run fails.
    const code = await runLocalCluster({ jobFile: file, log: () => {}, echo: /\[coordinator\] (step|waiting)/ });
    if (code !== 0) throw new InputError(`demo step "${name}" failed (exit ${code}); its job is ${file}`);
    return finalModelDir(spec.output);
  };
  const pretrained = await run('pretrain', job('demo-pretrain', base, join(dir, 'general.jsonl'), undefined, o.pretrainSteps, 3e-3, o.workers, join(dir, 'pretrain')));
  const finetuned = await run('finetune', job('demo-finetune', pretrained, join(dir, 'domain-train.jsonl'), join(dir, 'domain-test.jsonl'), o.finetuneSteps, 1e-3, o.workers, join(dir, 'finetune')));
  const scratch = await run('scratch', job('demo-scratch', base, join(dir, 'domain-train.jsonl'), join(dir, 'domain-test.jsonl'), o.finetuneSteps, 1e-3, o.workers, join(dir, 'scratch')));

  // Held-out domain evaluation of the three models, one process.
  const evalJob = await loadJobFile(join(dir, 'finetune.yaml'));
  evalJob.data.packing = false;
  // Through the prepared-dataset cache like every other data path (unpacked: its own key, its own cache).
  const { data, padId } = await prepareCachedRun(evalJob);
  const tok = await Tokenizer.fromDir(base);
  const prompt = promptIds(tok, { text: 'Dogger, Fisher. Wind' });
  const rows: Array<{ model: string; loss: number; perplexity: number; sample: string }> = [];
  for (const [label, modelDir] of [['base (pre-trained, not fine-tuned)', pretrained], ['fine-tuned', finetuned], ['from scratch, same budget', scratch]] as const) {
    const { model } = await loadModel(modelDir, { task: 'causal-lm' });
    const r = evalResult(await evalState(model, data.eval, 16, padId));
    const g = await generate(model, prompt, { maxNewTokens: 30, stopIds: [tok.eosTokenId ?? -1] });
    rows.push({ model: label, loss: r.loss, perplexity: r.perplexity, sample: tok.decode([...prompt, ...g.ids], { skipSpecialTokens: true }) });
    model.dispose();
  }
  closeCache(data);
  const generalReport = JSON.parse(await readFile(join(dir, 'pretrain', 'eval_report.json'), 'utf8'));
  o.log(`\n[demo] tfjs backend: ${activeBackend() ?? 'none'} (workers choose the same way: RINGTUNE_BACKEND or auto)`);
  o.log(`[demo] finished in ${elapsed()}. Pre-training on general text: eval loss ${generalReport.base_eval?.loss?.toFixed(3)} -> ${generalReport.final_eval?.loss?.toFixed(3)}`);
  // The training runs' logs evaluate packed rows (several bulletins per row, as trained); this table
  // evaluates each bulletin alone, so its losses differ a little from the last logged eval loss.
  console.log('\nHeld-out domain data (120 marine weather bulletins, each evaluated alone; the training log\'s eval loss is over packed rows, so it differs slightly), lower is better:\n');
  console.log('| model | eval loss | perplexity |');
  console.log('|---|---|---|');
  for (const r of rows) console.log(`| ${r.model} | ${r.loss.toFixed(3)} | ${r.perplexity.toFixed(2)} |`);
  console.log('\nSamples (greedy, prompt "Dogger, Fisher. Wind"):');
  for (const r of rows) console.log(`  ${r.model}:\n    ${r.sample}`);
  const [b, f, s] = rows;
  const verdict = f.loss < b.loss && f.loss < s.loss;
  console.log(`\nFine-tuned beats the base model (${f.loss.toFixed(3)} < ${b.loss.toFixed(3)}) and training from scratch (${f.loss.toFixed(3)} < ${s.loss.toFixed(3)}): ${verdict ? 'yes' : 'NO'}`);
  console.log(`Fine-tuned model: ${finetuned} (Hugging Face format). Reports: ${join(dir, 'finetune', 'report.html')}`);
  await writeFile(join(dir, 'demo-result.json'), JSON.stringify({ rows, verdict, seconds: (performance.now() - t0) / 1000 }, null, 2) + '\n');
  if (!verdict) process.exitCode = 1;
}
