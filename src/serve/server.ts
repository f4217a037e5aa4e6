/**
 * `ringtune serve`: HTTP inference for a model directory, OpenAI-style where a shape exists.
 *   GET  /healthz, GET /v1/models
 *   POST /v1/completions       {prompt, max_tokens, temperature, top_p, top_k, seed}   (causal LM)
 *   POST /v1/chat/completions  {messages, ...same}  rendered with the tokenizer's chat template
 *   POST /v1/classify          {input: string | string[]}                              (classification)
 * One model per process and tfjs is single-threaded, so requests run one at a time in arrival order.
 * Bad requests get 400 with {error: {message, type, param}} naming the field.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { classifyText } from '../model/classify.ts';
import { generate } from '../model/generate.ts';
import { loadModel } from '../model/model-dir.ts';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.ts';

class BadRequest extends Error {
  constructor(message: string, readonly param?: string, readonly status = 400) {
    super(message);
  }
}

interface SamplingBody { max_tokens?: unknown; temperature?: unknown; top_p?: unknown; top_k?: unknown; seed?: unknown }

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

export async function startInferenceServer(o: { modelDir: string; port: number; host?: string; log?: (l: string) => void }): Promise<InferenceServer> {
  const tok = await Tokenizer.fromDir(o.modelDir);
  const { model } = await loadModel(o.modelDir);
  const name = basename(o.modelDir.replace(/\/+$/, ''));
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => undefined);
    return next;
  };

  const complete = async (promptIds: number[], body: SamplingBody & Record<string, unknown>) => {
    if (model.task !== 'causal-lm') throw new BadRequest(`model ${name} is a classifier: use /v1/classify`, undefined, 404);
    const maxTokens = num(body, 'max_tokens', 64, 1, model.config.maxPositions, true);
    const temperature = num(body, 'temperature', 0, 0, 100);
    const topP = num(body, 'top_p', 1, 0, 1);
    const topK = num(body, 'top_k', 0, 0, 1e6, true);
    const seed = num(body, 'seed', 0, 0, 2 ** 31, true);
    if (promptIds.length >= model.config.maxPositions) throw new BadRequest(`prompt has ${promptIds.length} tokens; the model allows ${model.config.maxPositions}`, 'prompt');
    const stopIds = [model.config.eosTokenId, tok.eosTokenId].filter((x): x is number => x !== undefined);
    const g = await generate(model, promptIds.length ? promptIds : [tok.bosTokenId ?? 0], { maxNewTokens: maxTokens, temperature, topP, topK, seed, stopIds });
    return {
      text: tok.decode(g.ids, { skipSpecialTokens: true }),
      finish: g.stoppedBy === 'eos' ? 'stop' : 'length',
      usage: { prompt_tokens: promptIds.length, completion_tokens: g.ids.length, total_tokens: promptIds.length + g.ids.length },
    };
  };

  const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    '/v1/completions': async (body) => {
      if (typeof body.prompt !== 'string') throw new BadRequest('"prompt" must be a string', 'prompt');
      const r = await complete(tok.encode(body.prompt, { addSpecialTokens: false }), body);
      return {
        id: `cmpl-${randomBytes(6).toString('hex')}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: name,
        choices: [{ index: 0, text: r.text, finish_reason: r.finish }], usage: r.usage,
      };
    },
    '/v1/chat/completions': async (body) => {
      const msgs = body.messages;
      if (!Array.isArray(msgs) || msgs.length === 0 || msgs.some((m) => typeof m?.role !== 'string' || typeof m?.content !== 'string')) {
        throw new BadRequest('"messages" must be a non-empty array of {role, content} strings', 'messages');
      }
      if (!tok.chatTemplate) throw new BadRequest(`model ${name} has no chat template: use /v1/completions`, 'messages');
      const text = tok.applyChatTemplate(msgs as ChatMessage[], { addGenerationPrompt: true });
      const r = await complete(tok.encode(text, { addSpecialTokens: false }), body);
      return {
        id: `chatcmpl-${randomBytes(6).toString('hex')}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: name,
        choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish }], usage: r.usage,
      };
    },
    '/v1/classify': async (body) => {
      if (model.task !== 'classification') throw new BadRequest(`model ${name} is a causal LM: use /v1/completions`, undefined, 404);
      const inputs = typeof body.input === 'string' ? [body.input] : body.input;
      if (!Array.isArray(inputs) || inputs.length === 0 || inputs.some((x) => typeof x !== 'string' || x.trim() === '')) {
        throw new BadRequest('"input" must be a non-empty string or array of non-empty strings', 'input');
      }
      return { model: name, data: await Promise.all((inputs as string[]).map((text) => classifyText(model, tok, text))) };
    },
  };

  const server = createServer((req, res) => {
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (req.method === 'GET' && url === '/v1/models') return send(200, { object: 'list', data: [{ id: name, object: 'model', task: model.task, family: model.config.family }] });
    const route = routes[url];
    if (!route) return send(404, { error: { message: `no route ${req.method} ${url}`, type: 'invalid_request_error' } });
    if (req.method !== 'POST') return send(405, { error: { message: `${url} takes POST`, type: 'invalid_request_error' } });
    readJson(req)
      .then((body) => serial(() => route(body)))
      .then((out) => send(200, out))
      .catch((err) => {
        if (err instanceof BadRequest) send(err.status, { error: { message: err.message, type: 'invalid_request_error', param: err.param ?? null } });
        else {
          o.log?.(`[serve] ${url}: ${(err as Error).stack}`);
          send(500, { error: { message: (err as Error).message, type: 'server_error' } });
        }
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  o.log?.(`[serve] ${name} (${model.config.family}, ${model.task}) on http://${o.host ?? '127.0.0.1'}:${port}`);
  return {
    port, server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      model.dispose();
    },
  };
}
