/**
 * coordinator/coordinator.ts without NATS: each protocol step (numbered as in the file's header)
 * driven by calling its handler, what goes out read from an in-memory Outbox, what is recorded read
 * from the temp output dir. Liveness runs on a fake clock, so no test waits for a timeout.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RunFailedError } from '../../src/coordinator/coordinator.ts';
import { InputError } from '../../src/errors.ts';
import { addClassification, addLoss, emptyEvalState, type EvalState } from '../../src/eval/eval-state.ts';
import { readHistory } from '../run/helpers.ts';
import { completeStep, coordinator, evalReport, fakeClock, joinMsg, OTHER_RUN, ready, RUN, settled, startRun, stepReport } from './helpers.ts';

/** One rank's eval shard: `sum` over `tokens`. */
const lm = (sum: number, tokens: number): EvalState => {
  const s = emptyEvalState();
  addLoss(s, sum, tokens);
  return s;
};

const rejection = async (p: Promise<unknown>): Promise<Error> => {
  const r = await settled(p);
  assert.ok(r !== 'pending' && r.error, `expected a rejection, got ${r === 'pending' ? 'pending' : 'a value'}`);
  return r.error;
};

test('2-3 joins: rank by hint then join order; duplicates and extra joins ignored; one Assignment per worker, same token', async (t) => {
  const { c, job, outbox, seen } = await coordinator(t, { workers: 4 });
  c.onJoin(joinMsg('a'));
  c.onJoin({ ...joinMsg('a'), ringAddress: 'elsewhere:1' }); // a retry: Join repeats every second until assigned
  c.onJoin(joinMsg('b', 1));
  c.onJoin(joinMsg('c', 0));
  assert.equal(outbox.assignments.length, 0);
  assert.equal(c.members.size, 3);
  c.onJoin(joinMsg('d'));
  c.onJoin(joinMsg('e')); // one too many
  c.onJoin(joinMsg('a')); // a member still joining (its Assignment was lost): gets it again
  assert.equal(c.currentPhase, 'loading');
  assert.deepEqual(seen.phases, ['loading']);

  const expectedPeers = ['c', 'b', 'a', 'd'].map((w, rank) => ({ rank, workerId: w, ringAddress: `${w}.local:7000` }));
  // The worker beyond the world size is told so (it exits), the repeated Join of a member is not.
  const refused = outbox.assignments.filter((x) => x.a.refused);
  assert.deepEqual(refused.map((x) => x.to), ['e']);
  assert.match(refused[0].a.refused!, /already has its 4 workers/);
  const sent = outbox.assignments.filter((x) => !x.a.refused);
  assert.deepEqual(sent.map((x) => [x.to, x.a.rank]), [['c', 0], ['b', 1], ['a', 2], ['d', 3], ['a', 2]]);
  assert.deepEqual(sent[4].a, sent[2].a);
  const placed = sent.slice(0, 4);
  // No credential travels: the ring token is derived from the job secret on each worker.
  for (const { a } of placed) assert.ok(!('ringToken' in a) && !JSON.stringify(a).includes('token'), JSON.stringify(a).slice(0, 200));
  for (const { to, a } of placed) {
    assert.equal(a.workerId, to);
    assert.equal(a.runId, RUN);
    assert.equal(a.worldSize, 4);
    assert.equal(a.resumeFrom, '');
    assert.deepEqual(a.peers, expectedPeers);
    assert.deepEqual(JSON.parse(a.compiledJobJson), JSON.parse(JSON.stringify(job)));
  }
  assert.equal(outbox.controls.length, 0);
});

test('4-5 Ready from every rank -> exactly one Control.start with the start step', async (t) => {
  const { c, outbox, seen } = await coordinator(t, { workers: 2 });
  c.onReady(ready(0)); // before assignment: nobody has a rank yet
  c.onJoin(joinMsg('w0'));
  c.onJoin(joinMsg('w1'));
  c.onReady(ready(1, { runId: OTHER_RUN, startStep: 99 }));
  c.onReady(ready(0, { startStep: 6 }));
  c.onReady(ready(0, { startStep: 6 })); // twice from the same rank is still one rank
  assert.deepEqual(outbox.controls, []);
  c.onReady(ready(1, { startStep: 6, totalSteps: 30 }));
  assert.deepEqual(outbox.controls, [{ start: { startStep: 6 } }]);
  c.onReady(ready(1, { startStep: 6 })); // a rank that missed Start re-sends Ready: Start again, same step
  assert.deepEqual(outbox.controls, [{ start: { startStep: 6 } }, { start: { startStep: 6 } }]);
  assert.equal(c.currentPhase, 'training');
  assert.deepEqual(seen.phases, ['loading', 'training']);
  const status = c.status();
  assert.equal(status.step, 6);
  assert.equal(status.totalSteps, 30);
  assert.equal(status.worldSize, 2);
});

test('messages of another run change nothing: step, eval, checkpoint, failed, done', async (t) => {
  const { c, job, outbox, seen } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  const before = outbox.controls.length;
  for (const rank of [0, 1]) {
    await c.onStepReport(stepReport(rank, 1, { runId: OTHER_RUN }));
    await c.onEvalReport(evalReport(rank, 0, lm(4, 2), OTHER_RUN));
    await c.onDone({ runId: OTHER_RUN, rank, step: 1, finalModelDir: '/x' });
  }
  c.onCheckpoint({ runId: OTHER_RUN, step: 1, path: '/ckpt' });
  c.onFailed({ runId: OTHER_RUN, rank: 1, workerId: 'w1', error: 'old run', step: 0, lostRank: -1 });
  assert.equal(outbox.controls.length, before);
  assert.deepEqual(await readHistory(job.outputDir), []);
  assert.deepEqual([seen.steps, seen.evals, seen.checkpoints], [[], [], []]);
  assert.equal(c.currentPhase, 'training');
  assert.equal(c.status().lastCheckpointStep, 0);
  assert.equal(await settled(c.finished), 'pending');
});

test('6 steps: a step is recorded once every rank reported it, in any arrival order', async (t) => {
  const { c, job, seen } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  await c.onStepReport(stepReport(1, 1, { loss: 9.5, inputTokens: 70, computeMs: 30, reduceMs: 4, reduceBytes: 1032 }));
  await c.onStepReport(stepReport(1, 2, { loss: 9.25 })); // rank 1 is a step ahead; step 1 still waits for rank 0
  assert.deepEqual(seen.steps, []);
  assert.deepEqual(await readHistory(job.outputDir), []);
  await c.onStepReport(stepReport(0, 1, { loss: 2.5, lr: 5e-4, gradNorm: 0.75, count: 96, inputTokens: 58, computeMs: 20, reduceMs: 10.4, reduceBytes: 1032 }));
  assert.deepEqual(seen.steps, [1]);
  const [line] = await readHistory(job.outputDir);
  assert.equal(typeof line.time_ms, 'number');
  // rank 0's loss/lr/grad norm/count (every rank holds the same all-reduced values); 128 tokens over
  // the slowest rank's 34 ms = 3764.7 tok/s
  assert.deepEqual({ ...line, time_ms: 0 }, {
    type: 'train', step: 1, loss: 2.5, lr: 5e-4, grad_norm: 0.75, count: 96, tokens_per_s: 3765, workers: 2, tokens: 128, time_ms: 0,
    compute_ms: 30, reduce_ms_min: 4, reduce_ms: 10, reduce_bytes: 1032,
  });
  await c.onStepReport(stepReport(0, 2, { loss: 2.25 }));
  assert.deepEqual(seen.steps, [1, 2]);
  assert.deepEqual((await readHistory(job.outputDir)).map((l) => [l.step, l.loss]), [[1, 2.5], [2, 2.25]]);
  assert.equal(c.status().step, 2);
  assert.equal(c.status().lastLoss, 2.25);
});

test('6 a hash step where the replicas differ stops the run naming the diverged ranks', async (t) => {
  const { c, outbox, seen } = await coordinator(t, { workers: 3 });
  startRun(c, 3);
  await completeStep(c, 3, 9);
  for (const [rank, paramHash] of [[0, 'aaaa'], [1, 'bbbb'], [2, 'aaaa']] as const) await c.onStepReport(stepReport(rank, 10, { paramHash }));
  assert.deepEqual(seen.hashChecks, [false]);
  const [abort] = outbox.of('abort');
  assert.equal(abort.rank, -1);
  assert.equal(abort.lastStep, 10);
  assert.match(abort.reason, /diverged at step 10 \(ranks 0,2: aaaa; ranks 1: bbbb\)/);
  const err = await rejection(c.finished);
  assert.ok(err instanceof RunFailedError);
  assert.match(err.message, /^the run failed after step 10 .*diverged at step 10.*; no checkpoint was written$/);
  assert.equal(c.currentPhase, 'failed');
});

test('6 a hash step where every replica agrees: hashCheck(true), training goes on', async (t) => {
  const { c, outbox, seen } = await coordinator(t, { workers: 3 });
  startRun(c, 3);
  await completeStep(c, 3, 10, { paramHash: 'cafe' });
  await completeStep(c, 3, 11);
  assert.deepEqual(seen.hashChecks, [true]); // step 11 is no hash step: no verdict at all
  assert.deepEqual(outbox.of('abort'), []);
  assert.equal(c.currentPhase, 'training');
});

test('7 eval: states merged once every rank sent one; recorded; early stopping decides mid-run only', async (t) => {
  const { c, job, outbox, seen } = await coordinator(t, { workers: 2, eval: { every_n_steps: 3, early_stopping: { metric: 'loss', patience: 1 } } });
  startRun(c, 2, { totalSteps: 9 });
  const decide = async (step: number, rank0: EvalState, rank1: EvalState) => {
    await c.onEvalReport(evalReport(1, step, rank1));
    assert.equal(outbox.of('evalDecision').filter((d) => d.step === step).length, 0, 'decided before rank 0 reported');
    await c.onEvalReport(evalReport(0, step, rank0));
    return outbox.of('evalDecision').at(-1);
  };
  // base: (6 + 2) / 4 tokens = 2; the base evaluation is no reference for early stopping
  assert.deepEqual(await decide(0, lm(6, 2), lm(2, 2)), { step: 0, stop: false, best: Infinity, badEvals: 0 });
  assert.deepEqual(await decide(3, lm(3, 2), lm(1, 2)), { step: 3, stop: false, best: 1, badEvals: 0 }); // 4 / 4 = 1
  assert.deepEqual(await decide(6, lm(4, 2), lm(2, 2)), { step: 6, stop: true, best: 1, badEvals: 1 }); // 1.5: worse, patience 1
  assert.deepEqual(seen.evals.map(([s, r]) => [s, r.loss, r.tokens]), [[0, 2, 4], [3, 1, 4], [6, 1.5, 4]]);
  const evals = (await readHistory(job.outputDir)).filter((l) => l.type === 'eval');
  assert.deepEqual(evals, [
    { type: 'eval', step: 0, loss: 2, perplexity: Math.exp(2), tokens: 4 },
    { type: 'eval', step: 3, loss: 1, perplexity: Math.exp(1), tokens: 4 },
    { type: 'eval', step: 6, loss: 1.5, perplexity: Math.exp(1.5), tokens: 4 },
  ]);
  for (const rank of [0, 1]) await c.onDone({ runId: RUN, rank, step: 6, finalModelDir: '' });
  const summary = await c.finished;
  assert.equal(summary.stoppedEarly, true);
  assert.equal(summary.finalEval?.loss, 1.5);
});

test('7 without early stopping every decision is "go on" with best NaN', async (t) => {
  const { c, outbox } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  for (const rank of [0, 1]) await c.onEvalReport(evalReport(rank, 5, lm(100, 1)));
  const [d] = outbox.of('evalDecision');
  assert.deepEqual({ ...d, best: 0 }, { step: 5, stop: false, best: 0, badEvals: 0 });
  assert.ok(Number.isNaN(d.best));
});

test('7 a malformed eval state is an InputError naming the rank (runCoordinator turns it into fail)', async (t) => {
  const { c, job, outbox } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  await c.onEvalReport(evalReport(0, 5, lm(1, 1)));
  for (const bad of ['{"loss":', '{"loss":{"nllSum":[],"tokens":0},"nonFinite":-2}']) {
    await assert.rejects(c.onEvalReport(evalReport(1, 5, bad)), (err: Error) =>
      err instanceof InputError && err.message.startsWith('EvalReport from rank 1 for step 5: '));
  }
  assert.deepEqual(outbox.of('evalDecision'), []);
  assert.deepEqual(await readHistory(job.outputDir), []);
});

test('9 liveness: a rank silent for longer than the timeout stops the run; heartbeats and step reports keep it alive', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox } = await coordinator(t, { workers: 2, cluster: { heartbeat_timeout_ms: 1000 } });
  c.onJoin(joinMsg('w0'));
  clock.advance(5000); // waiting for workers: nobody is judged yet, and w0's clock restarts at assignment
  c.tick();
  assert.deepEqual(outbox.controls, []);
  c.onJoin(joinMsg('w1'));
  for (let i = 0; i < 6; i++) { // 6 x 400 ms = 2.4 s, well past the timeout, with signs of life in between
    clock.advance(400);
    c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'loading', step: 0, runId: RUN });
    if (i % 2) c.onHeartbeat({ workerId: 'w1', rank: 1, phase: 'loading', step: 0, runId: RUN });
    c.tick();
  }
  assert.deepEqual(outbox.of('abort'), []);
  assert.ok(outbox.of('alive').length >= 6); // the coordinator announces itself while loading
  for (const rank of [0, 1]) c.onReady(ready(rank));
  clock.advance(900);
  await c.onStepReport(stepReport(1, 1)); // a report is as good as a heartbeat
  c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 1, runId: RUN });
  clock.advance(900);
  c.tick();
  assert.deepEqual(outbox.of('abort'), []);
  assert.equal(c.status().workersAlive, 2);

  clock.advance(300); // w1: 1200 ms since its report; w0: 1200 ms too but w0 speaks now
  c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 1, runId: RUN });
  c.tick();
  const [abort] = outbox.of('abort');
  assert.equal(abort.rank, 1);
  assert.match(abort.reason, /no heartbeat for 1200 ms \(timeout 1000 ms\)/);
  const err = await rejection(c.finished);
  assert.ok(err instanceof RunFailedError);
  assert.match(err.message, /^rank 1 \(w1\) failed after step 0 .*no heartbeat for 1200 ms.*; no checkpoint was written$/);
  c.tick(); // after failure nothing more is announced or aborted
  assert.equal(outbox.of('abort').length, 1);
});

test('9 a Failed message stops the run naming the rank, the last complete step and the latest checkpoint', async (t) => {
  const { c, job, outbox } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  for (const step of [1, 2, 3]) await completeStep(c, 2, step);
  await c.onStepReport(stepReport(0, 4)); // step 4 incomplete: rank 1 never finished it
  c.onFailed({ runId: RUN, rank: 1, workerId: 'w1', error: 'out of memory', step: 3, lostRank: -1 });
  assert.deepEqual(outbox.of('abort'), [{ reason: 'out of memory', rank: 1, lastStep: 3 }]);
  assert.match((await rejection(c.finished)).message, /^rank 1 \(w1\) failed after step 3 \(last step completed by every rank\): out of memory; no checkpoint was written$/);

  const two = await coordinator(t, { workers: 2 });
  startRun(two.c, 2);
  for (const step of [1, 2, 3]) await completeStep(two.c, 2, step);
  two.c.onCheckpoint({ runId: RUN, step: 2, path: join(two.job.checkpoint.dir, 'step-00000002') });
  two.c.onFailed({ runId: RUN, rank: 1, workerId: 'w1', error: 'peer closed the stream', step: 3, lostRank: 0 });
  assert.equal(two.outbox.of('abort')[0].rank, 0);
  const err = await rejection(two.c.finished);
  assert.ok(err.message.startsWith('rank 0 (w0) failed after step 3 '), err.message);
  assert.ok(err.message.includes('lost (reported by rank 1): peer closed the stream'), err.message);
  assert.ok(err.message.endsWith(`latest checkpoint: step 2 in ${two.job.checkpoint.dir}`), err.message);
  assert.deepEqual(two.seen.checkpoints, [2]);
  assert.equal(job.checkpoint.dir, join(job.outputDir, 'checkpoints'));
});

test('10 Done from every rank: reports written, Control.shutdown, finished resolves with the evaluations', async (t) => {
  const { c, job, outbox, seen } = await coordinator(t, { workers: 2 });
  startRun(c, 2, { totalSteps: 3 });
  for (const rank of [0, 1]) await c.onEvalReport(evalReport(rank, 0, lm(5, 2)));
  for (const step of [1, 2, 3]) await completeStep(c, 2, step);
  for (const rank of [1, 0]) await c.onEvalReport(evalReport(rank, 3, lm(2, 2)));
  await c.onDone({ runId: RUN, rank: 1, step: 3, finalModelDir: '' });
  assert.deepEqual(outbox.of('shutdown'), []);
  await assert.rejects(stat(join(job.outputDir, 'eval_report.json')));
  await c.onDone({ runId: RUN, rank: 0, step: 3, finalModelDir: '/models/final' });

  assert.deepEqual(outbox.controls.at(-1), { shutdown: {} });
  assert.equal(outbox.of('shutdown').length, 1);
  assert.deepEqual(seen.phases.slice(-2), ['finishing', 'done']);
  const summary = await c.finished;
  const base = { loss: 10 / 4, perplexity: Math.exp(10 / 4), tokens: 4 }; // (5 + 5) / (2 + 2)
  const final = { loss: 1, perplexity: Math.exp(1), tokens: 4 }; // (2 + 2) / (2 + 2)
  assert.deepEqual(summary, { runId: RUN, steps: 3, baseEval: base, finalEval: final, stoppedEarly: false, finalModelDir: '/models/final' });
  const report = JSON.parse(await readFile(join(job.outputDir, 'eval_report.json'), 'utf8'));
  assert.deepEqual([report.run_id, report.workers, report.steps, report.final_model], [RUN, 2, 3, '/models/final']);
  assert.deepEqual([report.base_eval, report.final_eval, report.data], [base, final, { train: 40, eval: 8 }]);
  assert.match(await readFile(join(job.outputDir, 'report.html'), 'utf8'), /<svg/);
  // Done again (a rank that missed Shutdown re-sends it): Shutdown again, the reports are not rewritten.
  const written = (await stat(join(job.outputDir, 'eval_report.json'))).mtimeMs;
  await c.onDone({ runId: RUN, rank: 0, step: 3, finalModelDir: '' });
  assert.equal(outbox.of('shutdown').length, 2);
  assert.equal((await stat(join(job.outputDir, 'eval_report.json'))).mtimeMs, written);
  assert.equal(c.currentPhase, 'done');
});

test('10 Done after a failure does nothing: no reports, no shutdown, still failed', async (t) => {
  const { c, job, outbox } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  await completeStep(c, 2, 1);
  c.onFailed({ runId: RUN, rank: 0, workerId: 'w0', error: 'disk full', step: 1, lostRank: -1 });
  for (const rank of [0, 1]) await c.onDone({ runId: RUN, rank, step: 1, finalModelDir: '' });
  assert.deepEqual(outbox.of('shutdown'), []);
  assert.equal(c.currentPhase, 'failed');
  await assert.rejects(stat(join(job.outputDir, 'eval_report.json')));
  assert.match((await rejection(c.finished)).message, /disk full/);
});

test('3 the join deadline with too few workers: the run fails "only 1 of 2 workers joined"', async (t) => {
  const { c, outbox } = await coordinator(t, { workers: 2, cluster: { join_timeout_ms: 1500 } });
  c.onJoin(joinMsg('w0'));
  c.joinTimedOut();
  assert.equal(outbox.of('abort').length, 1);
  const err = await rejection(c.finished);
  assert.ok(err instanceof RunFailedError);
  assert.match(err.message, /^the run failed after step 0 .*only 1 of 2 workers joined within 1500 ms/);
  c.onJoin(joinMsg('w1')); // too late: no assignment
  assert.equal(c.currentPhase, 'failed');

  const full = await coordinator(t, { workers: 2 });
  startRun(full.c, 2);
  full.c.joinTimedOut(); // the timer fires after everyone joined: nothing happens
  assert.deepEqual(full.outbox.of('abort'), []);
  assert.equal(await settled(full.c.finished), 'pending');
});

test('9-10 a rank that sent Done is not declared lost while rank 0 still writes the final model', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox } = await coordinator(t, { workers: 2, cluster: { heartbeat_timeout_ms: 1000 } });
  startRun(c, 2, { totalSteps: 1 });
  await completeStep(c, 2, 1);
  await c.onDone({ runId: RUN, rank: 1, step: 1, finalModelDir: '' });
  c.onHeartbeat({ workerId: 'w1', rank: 1, phase: 'done', step: 1, runId: RUN }); // its last one
  for (let i = 0; i < 5; i++) { // rank 0 saves the final model for 5 s, heartbeating
    clock.advance(1000);
    c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 1, runId: RUN });
    c.tick();
  }
  assert.deepEqual(outbox.of('abort'), []);
  await c.onDone({ runId: RUN, rank: 0, step: 1, finalModelDir: '' });
  assert.equal((await c.finished).steps, 1);
});

test('9 acknowledgements: Control.alive carries the contiguous complete step and the latest checkpoint', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox, job, record } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  await completeStep(c, 2, 1);
  await completeStep(c, 2, 3); // step 2 lost on its way (to be re-sent): not acknowledged yet
  c.onCheckpoint({ runId: RUN, step: 3, path: '/ckpt/3' });
  clock.advance(100);
  c.tick();
  assert.deepEqual(outbox.of('alive').at(-1), { step: 1, checkpointStep: 3 });
  await completeStep(c, 2, 2); // the re-send arrives
  await c.onStepReport(stepReport(0, 2)); // and a late duplicate changes nothing
  c.tick();
  assert.deepEqual(outbox.of('alive').at(-1), { step: 3, checkpointStep: 3 });
  assert.equal(c.status().step, 3);
  // Step 2's line came after step 3's: metrics.jsonl is rewritten in step order, each step once.
  assert.deepEqual((await readHistory(job.outputDir)).filter((l) => l.type === 'train').map((l) => l.step), [1, 2, 3]);
  assert.deepEqual(record.history.lines.map((l) => l.step), [1, 2, 3]);
});

test('9 acknowledgements: a complete step is acknowledged only once its metrics.jsonl line is written (a kill meanwhile loses nothing)', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox, record } = await coordinator(t, { workers: 2 });
  startRun(c, 2);
  await completeStep(c, 2, 1);
  let release!: () => void;
  const train = record.train.bind(record);
  t.mock.method(record, 'train', async (line: Parameters<typeof record.train>[0]) => {
    await new Promise<void>((r) => (release = r));
    await train(line);
  });
  const writing = completeStep(c, 2, 2);
  await new Promise((r) => setImmediate(r));
  clock.advance(100);
  c.tick();
  assert.deepEqual(outbox.of('alive').at(-1), { step: 1, checkpointStep: 0 }, 'step 2 is complete, its line not yet written');
  release();
  await writing;
  c.tick();
  assert.deepEqual(outbox.of('alive').at(-1), { step: 2, checkpointStep: 0 });
});

test('9 progress watchdog: every rank alive but no step for cluster.progress_timeout_ms stops the run', async (t) => {
  const clock = fakeClock(t);
  const { c, outbox } = await coordinator(t, { workers: 2, cluster: { heartbeat_timeout_ms: 1000, progress_timeout_ms: 3000 } });
  startRun(c, 2);
  await completeStep(c, 2, 1);
  for (let i = 0; i < 7; i++) {
    clock.advance(500);
    // Heartbeats (from the worker's heartbeat thread) say what each compute thread is doing, and for how long.
    c.onHeartbeat({ workerId: 'w0', rank: 0, phase: 'training', step: 1, runId: RUN, activity: 'step 2: all-reduce', activityMs: 500 * i });
    c.onHeartbeat({ workerId: 'w1', rank: 1, phase: 'training', step: 1, runId: RUN, activity: 'step 2: micro-batch 1/2 forward+backward', activityMs: 500 * i + 200 });
    c.tick();
  }
  const [abort] = outbox.of('abort');
  assert.equal(abort.rank, -1);
  assert.match(abort.reason, /no progress for [34] s \(cluster\.progress_timeout_ms 3000\).*after step 1 though every rank is alive/);
  // The stalled rank first (longest activity): what the run is waiting on.
  assert.match(abort.reason, /; busy: rank 1: step 2: micro-batch 1\/2 forward\+backward for 3 s; rank 0: step 2: all-reduce for 3 s$/);
  assert.deepEqual(c.status().workers.map((w) => [w.rank, w.activity]).sort(), [[0, 'step 2: all-reduce'], [1, 'step 2: micro-batch 1/2 forward+backward']]);
  await rejection(c.finished);
});

test('9 NATS outage: nobody is blamed while the connection is down; past the timeout the run fails naming NATS', async (t) => {
  const clock = fakeClock(t);
  const nats = { downMs: 0 };
  const short = await coordinator(t, { workers: 2, cluster: { heartbeat_timeout_ms: 1000 }, nats });
  startRun(short.c, 2);
  nats.downMs = 800; // a short restart: no heartbeat arrives for 3 s, but the outage is shorter than the timeout
  clock.advance(3000);
  short.c.tick();
  assert.deepEqual(short.outbox.of('abort'), []);
  nats.downMs = 0;
  short.c.reconnected(); // everyone's clock restarts: they could not be heard
  short.c.tick();
  assert.deepEqual(short.outbox.of('abort'), []);

  nats.downMs = 1500;
  clock.advance(1500);
  short.c.tick();
  const [abort] = short.outbox.of('abort');
  assert.equal(abort.rank, -1);
  assert.match(abort.reason, /lost its NATS connection 1500 ms ago .*NATS is down or unreachable/);
  const err = await rejection(short.c.finished);
  assert.match(err.message, /^the run failed/);
});

test('7/10 classification: the merged confusion matrix reaches eval_report.json with the label names rank 0 sent in Ready', async (t) => {
  const { c, job } = await coordinator(t, { workers: 2 });
  startRun(c, 2, { totalSteps: 1, labels: ['neg', 'pos'] });
  const shard = (pairs: Array<[number, number]>) => {
    const s = emptyEvalState({ numClasses: 2 });
    for (const [predicted, label] of pairs) { addClassification(s, predicted, label); addLoss(s, 0.5, 1); }
    return s;
  };
  await completeStep(c, 2, 1);
  await c.onEvalReport(evalReport(1, 1, shard([[1, 1], [0, 1]])));
  await c.onEvalReport(evalReport(0, 1, shard([[0, 0], [1, 0], [0, 0]])));
  for (const rank of [1, 0]) await c.onDone({ runId: RUN, rank, step: 1, finalModelDir: '' });
  await c.finished;
  const report = JSON.parse(await readFile(join(job.outputDir, 'eval_report.json'), 'utf8'));
  assert.deepEqual(report.classification.labels, ['neg', 'pos']);
  assert.deepEqual(report.classification.confusion_matrix, [[2, 1], [1, 1]]); // rows: true neg (0,1,0 predicted), true pos (1,0)
  assert.equal(report.classification.accuracy, 3 / 5);
  assert.deepEqual(report.classification.per_class.map((p: { label: string; support: number }) => [p.label, p.support]), [['neg', 3], ['pos', 2]]);
});
