/**
 * A Hugging Face hub on 127.0.0.1 for tests, serving model directories the test made, with the
 * routes and headers @huggingface/hub 2.17.5 reads (checked against its src/lib/*.ts):
 *   GET /api/models/{repo}/revision/{rev}          modelInfo: JSON with `sha`
 *   GET /api/models/{repo}/tree/{rev}?recursive=…  listFiles: [{type, path, size, oid, lfs?: {oid, size, pointerSize}}]
 *   GET /{repo}/resolve/{rev}/{file}               small files: 200/206 with ETag "<git blob oid>", X-Repo-Commit
 *                                                  LFS files (*.safetensors, *.bin): 302 to /cdn/{sha256} with
 *                                                  X-Linked-Etag / X-Linked-Size, as the hub redirects to its CDN
 *   GET /cdn/{sha256}                              the LFS content, ETag "<sha256>"
 * Every content route honours `Range: bytes=a-b` / `bytes=a-` (206 + Content-Range). Errors carry the
 * hub's X-Error-Code (RepositoryNotFound, RevisionNotFound, GatedRepo, EntryNotFound) and a JSON body.
 * Every request is logged; `cutOnce` names files whose first full-body response is cut off midway.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface FakeRepo {
  files: Map<string, Buffer>;
  /** Branch or tag -> commit; `main` is made up when absent. */
  refs?: Record<string, string>;
  /** Requests must carry `Authorization: Bearer <token>` (a gated repo); otherwise 401 GatedRepo. */
  token?: string;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

const isLfs = (path: string) => /\.(safetensors|bin)$/.test(path);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** git's blob id: sha1("blob <len>\0" + content), the oid and ETag the hub gives non-LFS files. */
export const gitOid = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export async function readDirFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
  return out;
}

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  readonly repos = new Map<string, FakeRepo & { refs: Record<string, string> }>();
  readonly cutOnce = new Set<string>();
  private server!: Server;
  url = '';

  addRepo(name: string, repo: FakeRepo): string {
    const commit = randomBytes(20).toString('hex');
    this.repos.set(name, { ...repo, refs: repo.refs ?? { main: commit } });
    return repo.refs?.main ?? commit;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** Content requests (what "fetched a file" means), as "repo/file" or "cdn/<sha256>". */
  contentGets(): LoggedRequest[] {
    return this.log.filter((r) => /\/resolve\//.test(r.path) || r.path.startsWith('/cdn/'));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, 'http://x');
    const path = decodeURIComponent(url.pathname);
    this.log.push({ method: req.method!, path, range: req.headers.range, authorization: req.headers.authorization });
    const fail = (status: number, code: string, error: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code });
      res.end(JSON.stringify({ error }));
    };
    if (path.startsWith('/cdn/')) {
      const sha = path.slice(5);
      for (const repo of this.repos.values()) {
        for (const [name, body] of repo.files) if (isLfs(name) && sha256(body) === sha) return this.serve(req, res, name, body, { etag: `"${sha}"` });
      }
      return fail(404, 'EntryNotFound', 'no such object');
    }
    const api = /^\/api\/models\/(.+)\/(revision|tree)\/([^/]+)$/.exec(path);
    const resolve = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoName = api?.[1] ?? resolve?.[1];
    const repo = repoName === undefined ? undefined : this.repos.get(repoName);
    if (!repo) return fail(repoName === undefined ? 404 : 401, 'RepositoryNotFound', 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return fail(401, 'GatedRepo', `Access to model ${repoName} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
    }
    const rev = api?.[3] ?? resolve![2];
    const commit = /^[0-9a-f]{40}$/.test(rev) && Object.values(repo.refs).includes(rev) ? rev : repo.refs[rev];
    if (!commit) return fail(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    if (api?.[2] === 'revision') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ _id: 'x', id: repoName, sha: commit, private: false, gated: false, downloads: 0, likes: 0, lastModified: new Date(0).toISOString() }));
    }
    if (api?.[2] === 'tree') {
      const entries = [...repo.files].map(([name, body]) => ({
        type: 'file', path: name, size: body.length, oid: gitOid(body),
        ...(isLfs(name) ? { lfs: { oid: sha256(body), size: body.length, pointerSize: 134 } } : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify(entries));
    }
    const name = resolve![3];
    const body = repo.files.get(name);
    if (!body) return fail(404, 'EntryNotFound', `${name} does not exist`);
    if (isLfs(name)) {
      res.writeHead(302, {
        location: `/cdn/${sha256(body)}`, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length), 'x-repo-commit': commit, etag: `"${gitOid(body)}"`,
      });
      return void res.end();
    }
    this.serve(req, res, name, body, { etag: `"${gitOid(body)}"`, 'x-repo-commit': commit });
  }

  private serve(req: IncomingMessage, res: ServerResponse, name: string, body: Buffer, headers: Record<string, string>): void {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        return void res.end();
      }
      res.writeHead(206, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${body.length}` });
      return void res.end(body.subarray(start, end + 1));
    }
    res.writeHead(200, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(body.length) });
    if (this.cutOnce.delete(name)) {
      // Half the body, then the connection drops: the client sees a truncated transfer.
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }
}
