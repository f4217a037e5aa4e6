/**
 * Crash-safe file and directory replacement, the one place in ringtune that does it. A reader sees
 * the old complete version or the new complete version, never a torn one.
 *
 * Files:       write `.<name>.tmp-<pid>-<random>` beside the target -> fsync it -> rename over the
 *              target -> fsync the directory, so the rename itself survives a power cut.
 * Directories: build a staging dir beside the target -> fsync everything in it -> swap it in with
 *              renames -> fsync the parent directory.
 *
 * On any failure the temp file / staging dir is removed and an existing target is left as it was.
 * System errors (disk full, permissions, a directory in the way), whether from these functions or
 * from the caller's `body` / `fill`, become a RingtuneError that names the target and keeps the
 * system error as `cause`; any other error (a RingtuneError, a bug) passes through unchanged.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RingtuneError } from '../errors.ts';

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomicWith(target, (fh) => fh.writeFile(data));
}

/**
 * Streaming form of writeFileAtomic: `body` writes the content through `fh` (sequential writes from
 * position 0) and must not close it. For files too large to build in memory first (safetensors).
 */
export async function writeFileAtomicWith(target: string, body: (fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(target);
  const tmp = tempPathFor(target);
  let fh: FileHandle | undefined;
  try {
    await mkdir(dir, { recursive: true });
    fh = await open(tmp, 'wx');
    await body(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw asWriteError(target, 'existing file left unchanged', err);
  }
  await syncDir(dir);
}

/**
 * Builds a directory with `fill(stagingDir)` and swaps it in place of `target`. If fill throws, the
 * staging dir is removed and an existing target is untouched. Two renames are needed to replace an
 * existing directory (POSIX rename cannot replace a non-empty one): a crash between them leaves no
 * target, with the complete old version beside it as `.<name>.tmp-*.old`, never a half-written one.
 */
export async function replaceDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const parent = dirname(target);
  const staging = tempPathFor(target);
  try {
    await mkdir(staging, { recursive: true });
    await fill(staging);
    // fill may have used plain writes (copyFile, ...): make every file and entry durable before the
    // rename publishes them.
    await syncTree(staging);
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw asWriteError(target, 'existing directory left unchanged', err);
  }
  let old: string | undefined;
  try {
    if (await exists(target)) {
      old = tempPathFor(target) + '.old';
      await rename(target, old);
      try {
        await rename(staging, target);
      } catch (err) {
        await rename(old, target).catch(() => undefined); // put the old version back
        throw err;
      }
    } else {
      await rename(staging, target);
    }
  } catch (err) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw asWriteError(target, 'existing directory left unchanged', err);
  }
  await syncDir(parent);
  if (old !== undefined) await rm(old, { recursive: true, force: true });
}

/** A system error (it has an errno `code`) becomes a RingtuneError naming the target; anything else passes through. */
function asWriteError(target: string, outcome: string, err: unknown): unknown {
  if (err instanceof RingtuneError || typeof (err as NodeJS.ErrnoException)?.code !== 'string') return err;
  return new RingtuneError(`${target}: write failed, ${outcome}: ${(err as Error).message}`, { cause: err });
}

/** fsync a directory so renames and new entries in it survive a crash. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dir, 'r');
  } catch {
    return; // best effort: some platforms cannot open a directory; atomicity already holds
  }
  try {
    await fh.sync();
  } catch {
    // EINVAL/EPERM on file systems without directory fsync: durability is a bonus, atomicity holds
  } finally {
    await fh.close();
  }
}

/** fsync every file below `dir`, then the directories themselves (children before parents). */
async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      await syncTree(path);
    } else if (entry.isFile()) {
      const fh = await open(path, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  }
  await syncDir(dir);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
