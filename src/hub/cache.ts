/**
 * The hub cache layout huggingface_hub uses (and reads), so files fetched by Python tools are reused
 * and ours are usable by them:
 *
 *   <cacheDir>/models--org--name/
 *     blobs/<etag>                     file contents, named by the hub's ETag (sha256 for LFS files, git oid otherwise)
 *     blobs/<etag>.incomplete          a transfer in progress (or cut off): resumed with a Range request
 *     snapshots/<commit>/<file>        symlink -> ../../blobs/<etag>
 *     refs/<revision>                  the commit a branch or tag pointed to when last fetched
 *
 * Concurrency: several ringtune processes (N local workers, two jobs) may fetch the same blob. A
 * blob is written only under its lock (`<cacheDir>/.locks/models--org--name/<etag>.ringtune.lock`,
 * created with O_EXCL, holding pid and host), finished blobs appear by rename, snapshot links and
 * refs by rename too, so a reader never sees half a file. Python takes flock() on `<etag>.lock` in
 * the same folder; Node has no flock, so the two tools do not exclude each other: a simultaneous
 * Python download of the same blob is caught by the size / sha256 check, not prevented.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';
import { writeFileAtomic } from '../util/atomic.ts';

export const COMMIT = /^[0-9a-f]{40}$/;

export class RepoCache {
  readonly root: string;
  private readonly locks: string;

  constructor(readonly cacheDir: string, readonly repo: string) {
    const folder = getRepoFolderName({ type: 'model', name: repo });
    this.root = join(cacheDir, folder);
    this.locks = join(cacheDir, '.locks', folder);
  }

  blob(etag: string): string {
    return join(this.root, 'blobs', etag);
  }

  snapshot(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  /** The commit `revision` names here: itself when it is one, else refs/<revision>, else undefined. */
  async commitOf(revision: string): Promise<string | undefined> {
    if (COMMIT.test(revision)) return revision;
    try {
      const sha = (await readFile(join(this.root, 'refs', revision), 'utf8')).trim();
      return COMMIT.test(sha) ? sha : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision !== commit) await writeFileAtomic(join(this.root, 'refs', revision), commit);
  }

  /**
   * snapshots/<commit>/<file> -> the blob, as a relative symlink (huggingface_hub's choice: the cache
   * survives being moved). Made under a temp name and renamed over, so racing processes both win.
   * Where symlinks are refused (some network and Windows file systems), a copy, as huggingface_hub does.
   */
  async link(commit: string, file: string, etag: string): Promise<string> {
    const pointer = join(this.snapshot(commit), file);
    const blob = this.blob(etag);
    await mkdir(dirname(pointer), { recursive: true });
    const tmp = `${pointer}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await symlink(relative(dirname(pointer), blob), tmp);
    } catch {
      await copyFile(blob, tmp);
    }
    await rename(tmp, pointer);
    return pointer;
  }

  /**
   * Runs `body` holding the lock of one blob. A lock whose holder is gone (same host, dead pid) or
   * that nobody has touched for STALE_MS (a holder on another host that died) is taken over; the
   * holder refreshes its lock's mtime every REFRESH_MS while it works.
   */
  async withBlobLock<T>(etag: string, body: () => Promise<T>, onWait?: () => void): Promise<T> {
    const lock = join(this.locks, `${etag}.ringtune.lock`);
    await mkdir(this.locks, { recursive: true });
    let waited = false;
    for (;;) {
      try {
        const fh = await open(lock, 'wx');
        await fh.writeFile(JSON.stringify({ pid: process.pid, host: hostname() }));
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (await isStale(lock)) {
        await unlink(lock).catch(() => {});
        continue;
      }
      if (!waited) onWait?.();
      waited = true;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const refresh = setInterval(() => void utimes(lock, new Date(), new Date()).catch(() => {}), REFRESH_MS);
    try {
      return await body();
    } finally {
      clearInterval(refresh);
      await rm(lock, { force: true });
    }
  }
}

const POLL_MS = 100;
const REFRESH_MS = 10_000;
const STALE_MS = 120_000;

async function isStale(lock: string): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(lock, 'utf8'), stat(lock)]);
    let holder: { pid?: unknown; host?: unknown } = {};
    try {
      holder = JSON.parse(text);
    } catch {
      // being written this very moment: judged by age alone
    }
    if (holder.host === hostname() && typeof holder.pid === 'number' && !alive(holder.pid)) return true;
    return Date.now() - st.mtimeMs > STALE_MS;
  } catch {
    return false; // gone already: the next open decides
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
