/**
 * --threads on the commands that run a model: the flag wins over RINGTUNE_THREADS, which wins over
 * the job's `threads`; bad values name the flag or the variable; the start-up line names the count.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { threadsOption } from '../../src/cli/common.ts';
import { initBackend } from '../../src/model/backend.ts';
import { loadAddon } from '../../src/model/native/addon.ts';
import { createModelDir } from '../../src/model/create.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin', 'ringtune.js');

/** Parses argv with the real option as the commands declare it; returns the value or commander's error. */
function parse(argv: string[], env: string | undefined): unknown {
  const saved = process.env.RINGTUNE_THREADS;
  if (env === undefined) delete process.env.RINGTUNE_THREADS;
  else process.env.RINGTUNE_THREADS = env;
  try {
    let got: unknown;
    const cmd = new Command().exitOverride().configureOutput({ writeErr: () => {} }).addOption(threadsOption()).action((o) => { got = o.threads; });
    cmd.parse(argv, { from: 'user' });
    return got;
  } catch (err) {
    if (err instanceof CommanderError) return err.message;
    throw err;
  } finally {
    if (saved === undefined) delete process.env.RINGTUNE_THREADS;
    else process.env.RINGTUNE_THREADS = saved;
  }
}

test('--threads: the flag wins over RINGTUNE_THREADS; auto is a value', () => {
  assert.equal(parse(['--threads', '3'], undefined), 3);
  assert.equal(parse(['--threads', '3'], '5'), 3);
  assert.equal(parse([], '5'), 5);
  assert.equal(parse([], undefined), undefined);
  assert.equal(parse(['--threads', 'auto'], '5'), 'auto');
  assert.equal(parse([], 'auto'), 'auto');
});

test('--threads: bad values name the flag, or the variable they came from', () => {
  assert.match(String(parse(['--threads', '0'], undefined)), /option '--threads <n>' argument '0' is invalid\. expected a positive integer or "auto", got "0"/);
  assert.match(String(parse(['--threads', '1.5'], undefined)), /'--threads <n>'.*got "1\.5"/);
  assert.match(String(parse([], 'lots')), /option '--threads <n>' value 'lots' from env 'RINGTUNE_THREADS' is invalid\. expected a positive integer or "auto", got "lots"/);
});

// The real command line, end to end: `ringtune train --dry-run` starts the backend and validates the job.
const setup = (async () => {
  await initBackend(undefined, () => {});
  const dir = mkdtempSync(join(tmpdir(), 'ringtune-threads-'));
  const model = join(dir, 'model');
  await createModelDir({ family: 'gpt2', preset: 'tiny', out: model, seed: 1 });
  writeFileSync(join(dir, 'train.jsonl'), [...Array(8).keys()].map((i) => JSON.stringify({ text: `line ${i} of text.` })).join('\n') + '\n');
  const job = (threads: unknown) => {
    const file = join(dir, `job-${String(threads)}.yaml`);
    writeFileSync(file, `model: model\nbackend: native\nthreads: ${threads}\ndata: {train: train.jsonl, format: text}\ntraining: {max_steps: 1}\n`);
    return file;
  };
  return { dir, job };
})();
after(async () => rmSync((await setup).dir, { recursive: true, force: true }));

function train(args: string[], env: Record<string, string | undefined>) {
  const { RINGTUNE_THREADS: _t, RINGTUNE_BACKEND: _b, ...base } = process.env;
  return spawnSync(process.execPath, [CLI, 'train', ...args, '--dry-run'], { encoding: 'utf8', env: { ...base, ...env } as NodeJS.ProcessEnv, timeout: 120_000 });
}

test('ringtune train: --threads > RINGTUNE_THREADS > job threads, named in the start-up line', async (t) => {
  const { job } = await setup;
  if (!loadAddon().addon) return t.skip(`native engine not built: ${loadAddon().why}`);
  const file = job(3);
  const cases: Array<[string[], Record<string, string>, string]> = [
    [[], {}, '3 threads'],
    [[], { RINGTUNE_THREADS: '2' }, '2 threads'],
    [['--threads', '1'], { RINGTUNE_THREADS: '2' }, '1 thread,'],
  ];
  for (const [args, env, want] of cases) {
    const r = train([file, ...args], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[ringtune\\] tfjs backend: native \\(${want}`), `${args.join(' ')} ${JSON.stringify(env)}`);
  }
});

test('ringtune train: bad threads in the job or the environment is a one-line error, exit 1', async () => {
  const { job } = await setup;
  const badJob = train([job(0)], {});
  assert.equal(badJob.status, 1);
  assert.match(badJob.stderr, /threads: expected a positive integer or "auto", got 0/);
  const badEnv = train([job('auto')], { RINGTUNE_THREADS: 'x' });
  assert.equal(badEnv.status, 1);
  assert.match(badEnv.stderr, /from env 'RINGTUNE_THREADS' is invalid/);
  assert.doesNotMatch(badEnv.stderr, /\n\s+at /, 'no stack trace');
});
