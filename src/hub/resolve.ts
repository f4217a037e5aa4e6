/**
 * `--model` / `model:` -> a directory to read. A local directory wins; otherwise a hub id
 * (`org/name[@revision]`, hub-id.ts) is resolved into the huggingface_hub cache (cache.ts) and the
 * snapshot directory is returned, which reads like any local model directory.
 *
 * Online (through @huggingface/hub, which sends exactly these requests; tests/hub serves them):
 *   1. GET  /api/models/{repo}/revision/{revision}       modelInfo: the revision's commit (`sha`)
 *   2. GET  /api/models/{repo}/tree/{commit}             listFiles: names, sizes, LFS sha256
 *   3. pick what a model needs (pickFiles): config.json, the tokenizer files, generation_config.json,
 *      model.safetensors or model.safetensors.index.json + its shards; never *.bin / *.pt / *.h5 / msgpack
 *   4. per file, unless the snapshot has it:  GET /{repo}/resolve/{commit}/{file}  (Range 0-0 probe,
 *      then the content, resumed with Range: bytes=N-), hub-fetch.ts
 *   5. refs/{revision} = commit
 * A 40-hex revision whose snapshot is complete needs no request at all.
 * Offline (HF_HUB_OFFLINE=1): refs/{revision} -> snapshots/{commit}, which must hold config.json and
 * the weights; a miss names the repo, the revision and the cache directory.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { HubApiError, listFiles, modelInfo } from '@huggingface/hub';
import type { CompiledJob } from '../config/compile.ts';
import { RepoCache } from './cache.ts';
import { fetchFile, type FetchContext, type RemoteFile } from './hub-fetch.ts';
import { formatHubRef, hubRefOf, type HubRef } from './hub-id.ts';
import type { HubOptions } from './hub-options.ts';
import { HubAuthError, HubError, HubNetworkError, HubNotFoundError, HubOfflineMissError, HubUnsupportedRepoError } from './hub-errors.ts';

export const CONFIG = 'config.json';
export const SINGLE = 'model.safetensors';
export const INDEX = 'model.safetensors.index.json';
/** Fetched when the repo has them. */
export const OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'] as const;
/** Weights in formats ringtune does not load (pickles can run code on load): named in the error, never fetched. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|h5|msgpack)$/;

/**
 * `value` as typed (a flag) -> the directory to read. `base` is what a relative path is relative to.
 * A local path comes back as given, whether it exists or not: a missing one fails where it is read,
 * with the usual message naming the path as the user typed it.
 */
export async function resolveModelArg(value: string, opts: HubOptions, base = process.cwd()): Promise<string> {
  const local = isAbsolute(value) ? value : resolvePath(base, value);
  const ref = hubRefOf(value, local);
  return ref ? resolveHubModel(ref, opts, local) : value;
}

/**
 * The job with modelDir pointing at something readable: unchanged for a local model (or when a
 * launcher already resolved the hub model to a directory on this machine), else the hub snapshot.
 * `job.model` keeps what the job file wrote, for reports.
 */
export async function resolveJobModel(job: CompiledJob, opts: HubOptions): Promise<CompiledJob> {
  if (!job.hub || (await isDir(job.modelDir))) return job;
  return { ...job, modelDir: await resolveHubModel(job.hub, opts, job.modelDir) };
}

/** The snapshot directory of `ref` in the cache, downloading what is missing (unless offline). */
export async function resolveHubModel(ref: HubRef, opts: HubOptions, localCandidate?: string): Promise<string> {
  const cache = new RepoCache(opts.cacheDir, ref.repo);
  const label = formatHubRef(ref);
  const cachedCommit = await cache.commitOf(ref.revision);
  const cachedMissing = cachedCommit ? await missingFiles(cache.snapshot(cachedCommit)) : undefined;
  if (opts.offline) {
    if (!cachedCommit) {
      throw new HubOfflineMissError(`HF_HUB_OFFLINE=1 and ${label} is not in the hub cache ${opts.cacheDir} (no ${join(cache.root, 'refs', ref.revision)}): ` +
        'run once without HF_HUB_OFFLINE to download it, or point HF_HUB_CACHE / HF_HOME at the cache that has it');
    }
    if (cachedMissing!.length) {
      throw new HubOfflineMissError(`HF_HUB_OFFLINE=1 and the cached ${label} (commit ${cachedCommit}) in ${cache.snapshot(cachedCommit)} lacks ${cachedMissing!.join(', ')}: run once without HF_HUB_OFFLINE to complete it`);
    }
    return cache.snapshot(cachedCommit);
  }
  // A commit pins the content: a complete snapshot cannot be stale, so no request at all.
  if (cachedCommit === ref.revision && cachedMissing!.length === 0) return cache.snapshot(cachedCommit);

  const lastError: { status?: number; code?: string } = {};
  const ctxFetch = hubFetch(opts, lastError);
  const explain = (err: unknown): never => {
    throw explainError(err, lastError, { ref, opts, localCandidate, cached: cachedCommit && cachedMissing!.length === 0 ? cache.snapshot(cachedCommit) : undefined });
  };
  const repo = { type: 'model' as const, name: ref.repo };
  const info = await modelInfo({ name: ref.repo, revision: ref.revision, hubUrl: opts.endpoint, fetch: ctxFetch, additionalFields: ['sha'] }).catch(explain);
  const commit = (info as { sha?: string }).sha;
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) throw new HubError(`${label}: ${opts.endpoint} gave no commit for revision ${ref.revision} (sha: ${JSON.stringify(commit)})`);

  const listing = new Map<string, RemoteFile>();
  try {
    for await (const e of listFiles({ repo, revision: commit, hubUrl: opts.endpoint, fetch: ctxFetch })) {
      if (e.type === 'file') listing.set(e.path, { path: e.path, size: e.lfs?.size ?? e.size, sha256: e.lfs?.oid });
    }
  } catch (err) {
    explain(err);
  }
  const ctx: FetchContext = { repo: ref.repo, commit, opts, cache, fetch: ctxFetch, label };
  const get = (f: RemoteFile) => fetchFile(ctx, f).catch((err) => explain(err));
  const { files, index } = pickFiles(listing, `${label} (commit ${commit})`);
  for (const f of files) await get(f);
  if (index) {
    const indexPath = await get(index);
    for (const shard of await shardsOf(indexPath, listing, label)) await get(shard);
  }
  await cache.writeRef(ref.revision, commit);
  return cache.snapshot(commit);
}

/** Step 3: what to fetch, from the listing; the shards come from the index once it is here. */
export function pickFiles(listing: ReadonlyMap<string, RemoteFile>, where: string): { files: RemoteFile[]; index?: RemoteFile } {
  if (!listing.has(CONFIG)) {
    throw new HubUnsupportedRepoError(`${where} has no ${CONFIG}: not a transformers model repo (files: ${[...listing.keys()].slice(0, 20).join(', ') || 'none'})`);
  }
  const files = [CONFIG, ...OPTIONAL].flatMap((p) => (listing.has(p) ? [listing.get(p)!] : []));
  if (listing.has(SINGLE)) return { files: [...files, listing.get(SINGLE)!] };
  if (listing.has(INDEX)) return { files, index: listing.get(INDEX)! };
  const other = [...listing.keys()].filter((p) => OTHER_WEIGHTS.test(p));
  if (other.length) {
    throw new HubUnsupportedRepoError(`${where} has weights only as ${other.join(', ')}, which ringtune does not load (it reads safetensors only; ` +
      'pickled .bin/.pt files can run code when loaded). Pick a revision with model.safetensors (the hub\'s conversion bot often opened one as refs/pr/N), ' +
      'or convert it: load with transformers and save_pretrained(dir, safe_serialization=True), then pass that directory');
  }
  throw new HubUnsupportedRepoError(`${where} has no ${SINGLE} or ${INDEX}: no weights to load`);
}

/** The shard files an index names; each must be a plain file name present in the listing. */
async function shardsOf(indexPath: string, listing: ReadonlyMap<string, RemoteFile>, label: string): Promise<RemoteFile[]> {
  let weightMap: unknown;
  try {
    weightMap = JSON.parse(await readFile(indexPath, 'utf8')).weight_map;
  } catch (err) {
    throw new HubError(`${label}: ${INDEX} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof weightMap !== 'object' || weightMap === null) throw new HubError(`${label}: ${INDEX} has no weight_map object`);
  const names = [...new Set(Object.values(weightMap as Record<string, unknown>))].sort();
  return names.map((n) => {
    const f = typeof n === 'string' && !n.includes('/') && !n.includes('\\') ? listing.get(n) : undefined;
    if (!f) throw new HubError(`${label}: ${INDEX} names shard ${JSON.stringify(n)}, which the repo does not have`);
    return f;
  });
}

/** What a snapshot directory lacks to be loadable: config.json, and model.safetensors or the index and all its shards. */
export async function missingFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  if (!(await isFile(join(dir, CONFIG)))) missing.push(CONFIG);
  if (await isFile(join(dir, SINGLE))) return missing;
  if (!(await isFile(join(dir, INDEX)))) return [...missing, SINGLE];
  try {
    const map = JSON.parse(await readFile(join(dir, INDEX), 'utf8')).weight_map as Record<string, string>;
    for (const shard of new Set(Object.values(map))) if (!(await isFile(join(dir, shard)))) missing.push(shard);
  } catch {
    missing.push(`a readable ${INDEX}`);
  }
  return missing;
}

const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);
const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);

/**
 * fetch for the library: the token as a bearer header (passed here rather than as the library's
 * accessToken, which refuses tokens not starting with `hf_`, as mirrors may issue), the hub's
 * X-Error-Code kept for explainError, and a network failure turned into a HubNetworkError.
 */
function hubFetch(opts: HubOptions, lastError: { status?: number; code?: string }): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    if (opts.token && !headers.has('authorization')) headers.set('authorization', `Bearer ${opts.token}`);
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Unreachable(`cannot reach ${opts.endpoint} (${cause?.code ?? cause?.message ?? (err as Error).message})`, { cause: err });
    }
    if (!res.ok) Object.assign(lastError, { status: res.status, code: res.headers.get('x-error-code') ?? undefined });
    return res;
  };
}

/** hubFetch's failure, before explainError adds the repo and the way out. */
class Unreachable extends HubNetworkError {}

interface Where { ref: HubRef; opts: HubOptions; localCandidate?: string; cached?: string }

/** Library and network errors -> typed errors that name the repo, the revision, the endpoint and the way out. */
function explainError(err: unknown, last: { status?: number; code?: string }, w: Where): Error {
  const label = formatHubRef(w.ref);
  if (err instanceof Unreachable) {
    return new HubNetworkError(`${label}: ${err.message}. ${w.cached
      ? `It is cached (${w.cached}): set HF_HUB_OFFLINE=1 to use the cached copy.`
      : 'Check the network, or HF_ENDPOINT for a mirror; once a model is cached, HF_HUB_OFFLINE=1 runs without the network.'}` +
      (w.localCandidate ? ` (It was taken for a hub id because there is no local directory ${w.localCandidate}.)` : ''), { cause: err });
  }
  if (!(err instanceof HubApiError)) return err as Error;
  const status = err.statusCode;
  const local = w.localCandidate ? ` (and there is no local directory ${w.localCandidate})` : '';
  if (last.code === 'RevisionNotFound' || (status === 404 && last.code !== 'RepositoryNotFound' && /revision|rev id/i.test(err.message))) {
    return new HubNotFoundError(`${label}: repo ${w.ref.repo} at ${w.opts.endpoint} has no revision "${w.ref.revision}" (a branch, tag or commit)`, { cause: err });
  }
  if (last.code === 'GatedRepo' || ((status === 401 || status === 403) && last.code !== 'RepositoryNotFound')) {
    return new HubAuthError(`${label}: ${w.opts.endpoint} refused access to ${w.ref.repo} (HTTP ${status}: a gated or private repo). ` + (w.opts.token
      ? 'HF_TOKEN was sent but not accepted: check the token, and for a gated model accept its terms on the model page with the same account.'
      : 'Set HF_TOKEN to an access token (https://huggingface.co/settings/tokens); for a gated model accept its terms on the model page first.'), { cause: err });
  }
  if (status === 404 || last.code === 'RepositoryNotFound') {
    return new HubNotFoundError(`${label}: no model repo "${w.ref.repo}" at ${w.opts.endpoint}${local}` +
      (w.opts.token ? '' : '; if it is private, set HF_TOKEN'), { cause: err });
  }
  return new HubError(`${label}: ${w.opts.endpoint} answered HTTP ${status}: ${err.message}`, { cause: err });
}
