/**
 * `ringtune serve`: HTTP inference for a model directory, OpenAI-style where a shape exists.
 *   GET  /healthz, GET /metrics (Prometheus, src/serve/serve-metrics.ts), GET /v1/models
 *   POST /v1/completions       {prompt, max_tokens, temperature, top_p, top_k, seed, add_special_tokens}   (causal LM)
 *   POST /v1/chat/completions  {messages, ...same}  rendered with the tokenizer's chat template
 * Prompts are encoded as HF does (src/model/prompt.ts): a completion's prompt gets the tokenizer's
 * special tokens (a Llama <s>) unless `add_special_tokens: false` (or serve --no-add-special-tokens);
 * a chat prompt gets only what its template writes, unless `add_special_tokens: true` (as vLLM), and
 * never a second BOS.
 *   POST /v1/classify          {input: string | string[]}                              (classification)
 * A POST goes: body read and validated (bad requests get 400 with {error: {message, type, param}}
 * naming the field) -> RequestQueue (one model, tfjs single-threaded: one at a time in arrival order,
 * at most `maxQueue` waiting, else 503 + Retry-After) -> run on the model -> 200.
 * A client that goes away is cancelled wherever its request is: no longer queued, or generation
 * stopped before the next token. GET routes never queue, and generation yields to the event loop
 * between tokens, so /healthz and /metrics answer at once however long the queue is.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { InputError } from '../errors.ts';
import { classifyText } from '../model/classify.ts';
import { generate, promptTooLong } from '../model/generate.ts';
import { requireHead, WrongHeadError, type HeadUse } from '../model/head-check.ts';
import { loadModel } from '../model/model-dir.ts';
import { loadWithAdapter, tokenizerDir } from '../model/peft.ts';
import { promptIds } from '../model/prompt.ts';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.ts';
import { QueueFullError, RequestQueue } from './request-queue.ts';
import { ServeMetrics, type RequestOutcome } from './serve-metrics.ts';

/** Requests that may wait behind the running one unless --max-queue says otherwise. */
export const DEFAULT_MAX_QUEUE = 64;

class BadRequest extends Error {
  constructor(message: string, readonly param?: string, readonly status = 400) {
    super(message);
  }
}

interface SamplingBody { max_tokens?: unknown; temperature?: unknown; top_p?: unknown; top_k?: unknown; seed?: unknown }

/** A request's `add_special_tokens`, else `fallback`. */
function specialsFlag(body: Record<string, unknown>, fallback: boolean): boolean {
  const v = body.add_special_tokens;
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new BadRequest('"add_special_tokens" must be true or false', 'add_special_tokens');
  return v;
}

function num(body: Record<string, unknown>, key: string, fallback: number, min: number, max: number, integer = false): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new BadRequest(`"${key}" must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`, key);
  }
  return v;
}

async function readJson(req: IncomingMessage, limitBytes = 1 << 20): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limitBytes) throw new BadRequest(`request body over ${limitBytes} bytes`, undefined, 413);
    chunks.push(c as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new BadRequest(`body is not valid JSON (${(err as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
  return body as Record<string, unknown>;
}

export interface InferenceServer {
  port: number;
  server: Server;
  close(): Promise<void>;
}

export interface ServeOptions {
  modelDir: string;
  /** A LoRA adapter (PEFT layout) applied to modelDir, merged at load. */
  adapterDir?: string;
  /** The model's name in /v1/models and responses; default the directory's name (a hub model passes its id). */
  name?: string;
  port: number;
  host?: string;
  /** Requests that may wait behind the running one; one more gets 503 (default DEFAULT_MAX_QUEUE). */
  maxQueue?: number;
  /** /v1/completions' default for `add_special_tokens` (default true, as HF tokenizer(prompt)). */
  addSpecialTokens?: boolean;
  log?: (l: string) => void;
}

/** A validated request: what to run on the model when its turn comes; `signal` aborts when its client leaves. */
type Job = (signal: AbortSignal) => Promise<unknown>;

export async function startInferenceServer(o: ServeOptions): Promise<InferenceServer> {
  const maxQueue = o.maxQueue ?? DEFAULT_MAX_QUEUE;
  if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new InputError(`--max-queue must be an integer >= 0, got ${maxQueue}`);
  const tok = await Tokenizer.fromDir(await tokenizerDir(o.modelDir, o.adapterDir));
  const { model, missingHeads } = o.adapterDir ? await loadWithAdapter(o.modelDir, o.adapterDir) : await loadModel(o.modelDir);
  const name = o.name ?? basename((o.adapterDir ?? o.modelDir).replace(/\/+$/, ''));
  const queue = new RequestQueue(maxQueue);
  const metrics = new ServeMetrics(() => queue.waiting);

  /** The head check the CLI commands use (src/model/head-check.ts), answered as 404: the route does not exist for this model. */
  const needHead = (task: 'causal-lm' | 'classification', use: HeadUse) => {
    try {
      requireHead(model, `model ${name}`, task, use, missingHeads);
    } catch (err) {
      if (err instanceof WrongHeadError) throw new BadRequest(err.message, undefined, 404);
      throw err;
    }
  };

  const completion = (promptIds: number[], body: SamplingBody & Record<string, unknown>) => {
    needHead('causal-lm', { command: '/v1/completions and /v1/chat/completions', otherCommand: '/v1/classify' });
    const maxTokens = num(body, 'max_tokens', 64, 1, model.config.maxPositions, true);
    const temperature = num(body, 'temperature', 0, 0, 100);
    const topP = num(body, 'top_p', 1, 0, 1);
    const topK = num(body, 'top_k', 0, 0, 1e6, true);
    const seed = num(body, 'seed', 0, 0, 2 ** 31, true);
    const tooLong = promptTooLong(promptIds.length, model.config.maxPositions);
    if (tooLong) throw new BadRequest(tooLong, 'prompt');
    const stopIds = [model.config.eosTokenId, tok.eosTokenId].filter((x): x is number => x !== undefined);
    return async (signal: AbortSignal) => {
      const t0 = performance.now();
      const g = await generate(model, promptIds.length ? promptIds : [tok.bosTokenId ?? 0], {
        maxNewTokens: maxTokens, temperature, topP, topK, seed, stopIds, signal, onToken: () => metrics.token(),
      }).finally(() => metrics.observeGeneration((performance.now() - t0) / 1000));
      return {
        text: tok.decode(g.ids, { skipSpecialTokens: true }),
        finish: g.stoppedBy === 'eos' ? 'stop' : 'length',
        usage: { prompt_tokens: promptIds.length, completion_tokens: g.ids.length, total_tokens: promptIds.length + g.ids.length },
      };
    };
  };

  const routes: Record<string, (body: Record<string, unknown>) => Job> = {
    '/v1/completions': (body) => {
      if (typeof body.prompt !== 'string') throw new BadRequest('"prompt" must be a string', 'prompt');
      const ids = promptIds(tok, { text: body.prompt }, { addSpecialTokens: specialsFlag(body, o.addSpecialTokens ?? true) });
      const run = completion(ids, body);
      return async (signal) => {
        const r = await run(signal);
        return {
          id: `cmpl-${randomBytes(6).toString('hex')}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: name,
          choices: [{ index: 0, text: r.text, finish_reason: r.finish }], usage: r.usage,
        };
      };
    },
    '/v1/chat/completions': (body) => {
      const msgs = body.messages;
      if (!Array.isArray(msgs) || msgs.length === 0 || msgs.some((m) => typeof m?.role !== 'string' || typeof m?.content !== 'string')) {
        throw new BadRequest('"messages" must be a non-empty array of {role, content} strings', 'messages');
      }
      if (!tok.chatTemplate) throw new BadRequest(`model ${name} has no chat template: use /v1/completions`, 'messages');
      const ids = promptIds(tok, { messages: msgs as ChatMessage[] }, { addSpecialTokens: specialsFlag(body, false) });
      const run = completion(ids, body);
      return async (signal) => {
        const r = await run(signal);
        return {
          id: `chatcmpl-${randomBytes(6).toString('hex')}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: name,
          choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish }], usage: r.usage,
        };
      };
    },
    '/v1/classify': (body) => {
      needHead('classification', { command: '/v1/classify', otherCommand: '/v1/completions' });
      const inputs = typeof body.input === 'string' ? [body.input] : body.input;
      if (!Array.isArray(inputs) || inputs.length === 0 || inputs.some((x) => typeof x !== 'string' || x.trim() === '')) {
        throw new BadRequest('"input" must be a non-empty string or array of non-empty strings', 'input');
      }
      return async () => ({ model: name, data: await Promise.all((inputs as string[]).map((text) => classifyText(model, tok, text))) });
    },
  };

  /** Controllers of the inference requests in flight, so close() can cancel them all. */
  const inFlight = new Set<AbortController>();

  const infer = (req: IncomingMessage, res: ServerResponse, url: string, route: (body: Record<string, unknown>) => Job) => {
    const client = new AbortController();
    inFlight.add(client);
    // req 'close' fires as soon as the body has been read; only a response closed before end() means
    // the client went away.
    res.on('close', () => {
      inFlight.delete(client);
      if (!res.writableEnded) client.abort();
    });
    const answer = (outcome: RequestOutcome, status: number, payload: unknown, headers: Record<string, string> = {}) => {
      metrics.request(outcome);
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(payload));
    };
    readJson(req)
      .then((body) => queue.run(route(body), client.signal))
      .then((out) => (client.signal.aborted ? metrics.request('cancelled') : answer('ok', 200, out)))
      .catch((err) => {
        if (client.signal.aborted) return metrics.request('cancelled'); // nobody to answer
        if (err instanceof QueueFullError) {
          return answer('503', 503, { error: { message: err.message, type: 'server_error', code: 'queue_full', param: null, max_queue: err.limit } }, {
            'retry-after': String(err.retryAfterSeconds),
          });
        }
        if (err instanceof BadRequest) return answer('4xx', err.status, { error: { message: err.message, type: 'invalid_request_error', param: err.param ?? null } });
        o.log?.(`[serve] ${url}: ${(err as Error).stack}`);
        answer('5xx', 500, { error: { message: (err as Error).message, type: 'server_error' } });
      });
  };

  const server = createServer((req, res) => {
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (req.method === 'GET' && url === '/metrics') {
      return void metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics collection failed: ${String(err)}\n`),
      );
    }
    if (req.method === 'GET' && url === '/v1/models') return send(200, { object: 'list', data: [{ id: name, object: 'model', task: model.task, family: model.config.family }] });
    const route = routes[url];
    if (!route) return send(404, { error: { message: `no route ${req.method} ${url}`, type: 'invalid_request_error' } });
    if (req.method !== 'POST') return send(405, { error: { message: `${url} takes POST`, type: 'invalid_request_error' } });
    infer(req, res, url, route);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  o.log?.(`[serve] ${name} (${model.config.family}, ${model.task}) on http://${o.host ?? '127.0.0.1'}:${port}, up to ${maxQueue} requests queued`);
  return {
    port, server,
    close: async () => {
      for (const client of inFlight) client.abort();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await queue.idle(); // the running generation stops at its next token; then the weights can go
      model.dispose();
    },
  };
}
