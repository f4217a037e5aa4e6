/**
 * The inference server under load, over real HTTP on 127.0.0.1 (issue 11: 300 abandoned requests were
 * all still generated and /healthz took 75 s while the queue drained):
 *  - a full queue answers 503 + Retry-After with the limit named; the accepted requests still get
 *    exactly what generate() gives;
 *  - clients that give up while queued cost nothing: the generated-token counter grows by exactly the
 *    tokens of the requests that were answered (or were running when they left);
 *  - /healthz and /metrics answer in well under 1 s while a long generation runs, and a client that
 *    leaves mid-generation stops it before the next token and frees its KV cache.
 * The long generation is the tiny llama with 2048 positions, greedy from "The sea was": seed 3 runs
 * the full 2000 tokens without EOS (~7 ms a token here), far longer than any check below takes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { createModelDir } from '../../src/model/create.ts';
import { generate } from '../../src/model/generate.ts';
import { loadModel } from '../../src/model/model-dir.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { startInferenceServer } from '../../src/serve/server.ts';
import { ready, tempDir } from '../train/fixtures.ts';

const PROMPT = 'The sea was';
const LONG = { prompt: PROMPT, max_tokens: 2000 };
const SHORT = { prompt: PROMPT, max_tokens: 12 };

async function serve(t: TestContext, maxQueue?: number) {
  await ready;
  const dir = await tempDir(t);
  const modelDir = join(dir, 'm');
  await createModelDir({ family: 'llama', preset: 'tiny', out: modelDir, seed: 3, maxPositions: 2048 });
  const s = await startInferenceServer({ modelDir, port: 0, maxQueue });
  t.after(() => s.close());
  const base = `http://127.0.0.1:${s.port}`;

  /** POSTs a completion; the promise resolves with status/headers/json, or with 'aborted' if `signal` fires first. */
  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal }).then(
      async (res) => ({ status: res.status, headers: res.headers, json: (await res.json()) as Record<string, any> }),
      (err: Error) => {
        if (err.name !== 'AbortError') throw err;
        return 'aborted' as const;
      },
    );

  /** One sample of the server's /metrics, e.g. metric('ringtune_serve_requests_total', 'outcome="ok"'). */
  const metrics = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return (name: string, labels = '') => {
      const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}} ` : `${name} `));
      assert.ok(line, `no sample ${name}{${labels}} in /metrics`);
      return Number(line.split(' ')[1]);
    };
  };
  const tokens = async () => (await metrics())('ringtune_serve_generated_tokens_total');
  const outcome = async (o: string) => (await metrics())('ringtune_serve_requests_total', `outcome="${o}"`);
  const depth = async () => (await metrics())('ringtune_serve_queue_depth');
  const until = async (what: string, cond: () => Promise<boolean>, timeoutMs = 20_000) => {
    const t0 = Date.now();
    while (!(await cond())) {
      assert.ok(Date.now() - t0 < timeoutMs, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  // What the server must answer for SHORT: greedy generate() on the same weights.
  const tok = await Tokenizer.fromDir(modelDir);
  const { model } = await loadModel(modelDir);
  const g = await generate(model, tok.encode(PROMPT, { addSpecialTokens: false }), { maxNewTokens: SHORT.max_tokens, stopIds: [tok.eosTokenId!] });
  model.dispose();
  const shortText = tok.decode(g.ids, { skipSpecialTokens: true });

  return { base, post, metrics, tokens, outcome, depth, until, shortText };
}

test('a full queue answers 503 + Retry-After naming the limit; accepted requests get the right answer', async (t) => {
  const s = await serve(t, 2);
  const a = new AbortController();
  const running = s.post(LONG, a.signal);
  await s.until('the long generation to start', async () => (await s.tokens()) > 0);
  const queued = [s.post(SHORT), s.post(SHORT)];
  await s.until('two requests queued', async () => (await s.depth()) === 2);

  const full = await s.post(SHORT);
  assert.notEqual(full, 'aborted');
  if (full === 'aborted') return;
  assert.equal(full.status, 503);
  assert.match(full.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
  assert.equal(full.json.error.code, 'queue_full');
  assert.equal(full.json.error.max_queue, 2);
  assert.match(full.json.error.message, /--max-queue 2/);
  assert.equal(await s.outcome('503'), 1);

  a.abort();
  assert.equal(await running, 'aborted');
  for (const r of await Promise.all(queued)) {
    assert.notEqual(r, 'aborted');
    if (r === 'aborted') return;
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].text, s.shortText);
  }
  const m = await s.metrics();
  assert.deepEqual(
    ['ok', '4xx', '503', '5xx', 'cancelled'].map((o) => m('ringtune_serve_requests_total', `outcome="${o}"`)),
    [2, 0, 1, 0, 1],
  );
  assert.equal(m('ringtune_serve_queue_depth'), 0);
});

test('clients that give up while queued are never generated', async (t) => {
  const s = await serve(t);
  const a = new AbortController();
  const running = s.post(LONG, a.signal);
  await s.until('the long generation to start', async () => (await s.tokens()) > 0);
  const N = 5;
  const quitters = [...Array(N)].map(() => new AbortController());
  const gaveUp = quitters.map((c) => s.post({ prompt: PROMPT, max_tokens: 50 }, c.signal));
  await s.until(`${N} requests queued`, async () => (await s.depth()) === N);
  for (const c of quitters) c.abort();
  assert.deepEqual(await Promise.all(gaveUp), Array(N).fill('aborted'));
  // They leave the line at once, while the long generation still runs.
  await s.until('the queue to empty', async () => (await s.depth()) === 0 && (await s.outcome('cancelled')) === N);
  assert.notEqual(await Promise.race([running, new Promise((r) => setTimeout(() => r('still running'), 50))]), 'aborted');

  a.abort();
  await running;
  await s.until('the long generation to stop', async () => (await s.outcome('cancelled')) === N + 1);
  const afterLong = await s.tokens();
  assert.ok(afterLong < LONG.max_tokens, `the long generation ran to ${afterLong} tokens after its client left`);
  // Queued behind the quitters' old places: had any of them run, its 50 tokens would be counted first.
  const next = await s.post(SHORT);
  assert.notEqual(next, 'aborted');
  if (next === 'aborted') return;
  assert.equal(next.json.choices[0].text, s.shortText);
  const m = await s.metrics();
  assert.equal(m('ringtune_serve_generated_tokens_total'), afterLong + next.json.usage.completion_tokens);
  assert.equal(m('ringtune_serve_generation_duration_seconds_count'), 2);
  assert.equal(m('ringtune_serve_requests_total', 'outcome="ok"'), 1);
});

test('/healthz and /metrics answer in < 1 s during a long generation; a client that leaves stops it', async (t) => {
  const s = await serve(t);
  const tensorsBefore = tf.memory().numTensors;
  const a = new AbortController();
  let finished = false;
  const running = s.post(LONG, a.signal).then((r) => ((finished = true), r));
  await s.until('the long generation to start', async () => (await s.tokens()) > 0);

  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    for (const path of ['/healthz', '/metrics']) {
      const t0 = performance.now();
      const res = await fetch(`${s.base}${path}`);
      await res.text();
      const ms = performance.now() - t0;
      assert.equal(res.status, 200);
      assert.ok(ms < 1000, `${path} took ${ms.toFixed(0)} ms during a generation`);
    }
    seen.push(await s.tokens());
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(finished, false, 'the generation had ended before the probes ran: it held the event loop throughout, or it is too short');
  assert.ok(seen[seen.length - 1] > seen[0], `no tokens generated between the probes: ${seen}`);

  a.abort();
  assert.equal(await running, 'aborted');
  await s.until('the generation to stop', async () => (await s.outcome('cancelled')) === 1);
  const stopped = await s.tokens();
  assert.ok(stopped < LONG.max_tokens, `the generation ran to ${stopped} tokens after its client left`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await s.tokens(), stopped, 'tokens still generated after the client left');
  assert.equal(tf.memory().numTensors, tensorsBefore, 'the cancelled generation left tensors behind (its KV cache?)');
});
