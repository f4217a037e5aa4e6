/**
 * One blob from the hub into the cache, through @huggingface/hub's fileDownloadInfo (size, ETag,
 * redirects, xet) and downloadFile (a Blob whose slice(offset) is a Range request). What the
 * library's own downloadFileToCacheDir lacks, and why this file exists: it names the snapshot
 * folder after each file's *last* commit (not the revision's commit, so one model is spread over
 * several folders Python would not find), writes no refs/, never resumes (`.incomplete` is
 * truncated), verifies nothing, takes no lock and prints with console.debug.
 *
 * Steps for one file (the caller has the listing: path, size, sha256 for LFS files):
 *   1. snapshots/<commit>/<file> exists with the right size -> done, no request.
 *   2. fileDownloadInfo -> ETag (the blob's name, as huggingface_hub names it) and size.
 *   3. blobs/<etag> exists with the right size (fetched for another revision) -> link, done.
 *   4. Under the blob's lock: append to blobs/<etag>.incomplete from its current size (Range
 *      request), retrying a cut-off transfer up to maxAttempts, each time from where it stopped.
 *   5. Size must match; an LFS file's sha256 must equal its LFS oid (a resumed file that fails is
 *      fetched once more from zero). Rename to blobs/<etag>, link the snapshot.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { downloadFile, fileDownloadInfo } from '@huggingface/hub';
import type { HubOptions } from './hub-options.ts';
import { HubIntegrityError, HubNetworkError, HubNotFoundError } from './hub-errors.ts';
import type { RepoCache } from './cache.ts';
import { FileProgress } from './progress.ts';

/** A file of the repo at the resolved commit, as the tree listing describes it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** The LFS oid: sha256 of the content. Absent for small git-stored files. */
  sha256?: string;
}

export interface FetchContext {
  repo: string;
  commit: string;
  opts: HubOptions;
  cache: RepoCache;
  fetch: typeof fetch;
  /** "org/name@rev": prefixes progress lines. */
  label: string;
}

const sizeOf = (p: string) => stat(p).then((s) => s.size, () => -1);

/** `"abc"`, `W/"abc"` -> `abc`: huggingface_hub's _normalize_etag, so blob names match Python's. */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"+|"+$/g, '');
}

export async function fetchFile(ctx: FetchContext, file: RemoteFile): Promise<string> {
  const pointer = join(ctx.cache.snapshot(ctx.commit), file.path);
  if ((await sizeOf(pointer)) === file.size) return pointer;

  const info = await fileDownloadInfo({ repo: { type: 'model', name: ctx.repo }, path: file.path, revision: ctx.commit, hubUrl: ctx.opts.endpoint, fetch: ctx.fetch });
  if (!info) throw new HubNotFoundError(`${ctx.label}: ${file.path} is in the listing of commit ${ctx.commit} but ${ctx.opts.endpoint} does not serve it (HTTP 404)`);
  if (info.size !== file.size) throw new HubIntegrityError(`${ctx.label}: ${file.path} is ${file.size} bytes in the listing but ${info.size} bytes at ${info.url}`);
  const etag = normalizeEtag(info.etag);
  if (!/^[A-Za-z0-9_.-]+$/.test(etag)) throw new HubIntegrityError(`${ctx.label}: ${file.path}: the ETag ${JSON.stringify(info.etag)} cannot name a cache file`);
  const blob = ctx.cache.blob(etag);

  if ((await sizeOf(blob)) !== file.size) {
    await mkdir(dirname(blob), { recursive: true });
    await ctx.cache.withBlobLock(etag, async () => {
      if ((await sizeOf(blob)) === file.size) return; // another process finished it while we waited
      const remote = await downloadFile({ repo: { type: 'model', name: ctx.repo }, path: file.path, revision: ctx.commit, hubUrl: ctx.opts.endpoint, fetch: ctx.fetch, downloadInfo: info });
      if (!remote) throw new HubNotFoundError(`${ctx.label}: ${file.path} vanished from ${ctx.opts.endpoint}`);
      await transfer(ctx, file, remote, `${blob}.incomplete`);
      await rename(`${blob}.incomplete`, blob);
    }, () => ctx.opts.log(`${ctx.label}: ${file.path}: another process is downloading it; waiting\n`));
  }
  return ctx.cache.link(ctx.commit, file.path, etag);
}

/** Steps 4-5: fill `partial` to file.size, resuming, then verify. Throws with the partial kept for a later run. */
async function transfer(ctx: FetchContext, file: RemoteFile, remote: Blob, partial: string): Promise<void> {
  const { opts } = ctx;
  let restartedFromZero = false;
  const progress = new FileProgress(opts.progress, opts.log, `${ctx.label} ${file.path}`, file.size, Math.min(file.size, Math.max(0, await sizeOf(partial))));
  for (let attempt = 1; ; attempt++) {
    let have = Math.max(0, await sizeOf(partial));
    if (have > file.size) {
      await rm(partial, { force: true });
      have = 0;
    }
    progress.at(have);
    const resumedFrom = have;
    let failure: string | undefined;
    if (have < file.size) {
      const fh = await open(partial, 'a');
      try {
        for await (const chunk of remote.slice(have).stream() as unknown as AsyncIterable<Uint8Array>) {
          if (have + chunk.byteLength > file.size) throw new Error(`the server sent more than the ${file.size} bytes announced`);
          await fh.write(chunk);
          have += chunk.byteLength;
          progress.advance(chunk.byteLength);
        }
        if (have < file.size) failure = `the response ended after ${have} of ${file.size} bytes`;
      } catch (err) {
        failure = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
      } finally {
        await fh.close();
      }
    }
    if (failure !== undefined) {
      if (attempt >= opts.maxAttempts) {
        throw new HubNetworkError(`${ctx.label}: downloading ${file.path} from ${opts.endpoint} failed ${attempt} times (last: ${failure}); ` +
          `${await sizeOf(partial)} of ${file.size} bytes are kept in ${partial} and the next run resumes from there`);
      }
      progress.retry(Math.max(0, await sizeOf(partial)), failure, attempt + 1);
      if (opts.retryDelayMs > 0) await new Promise((r) => setTimeout(r, opts.retryDelayMs * attempt));
      continue;
    }
    const problem = await verify(partial, file);
    if (problem === undefined) {
      progress.finish();
      return;
    }
    await rm(partial, { force: true });
    // A resumed file may have been glued to a prefix of another version: once more from zero.
    if (resumedFrom > 0 && !restartedFromZero) {
      restartedFromZero = true;
      opts.log(`${ctx.label} ${file.path}: ${problem}; the resumed part did not match, downloading it again from the start\n`);
      continue;
    }
    throw new HubIntegrityError(`${ctx.label}: ${file.path} from ${opts.endpoint}: ${problem}; the partial file was removed, run again to retry`);
  }
}

async function verify(path: string, file: RemoteFile): Promise<string | undefined> {
  const size = await sizeOf(path);
  if (size !== file.size) return `${size} bytes on disk but ${file.size} announced`;
  if (!file.sha256) return undefined;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const got = hash.digest('hex');
  return got === file.sha256 ? undefined : `sha256 ${got} but the hub's LFS oid is ${file.sha256}`;
}
