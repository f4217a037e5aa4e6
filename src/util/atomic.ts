/**
 * Crash-safe file and directory replacement: write beside the target, fsync, rename. A reader sees
 * the old complete version or the new complete version, never a torn one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Builds a directory with `fill(stagingDir)` and swaps it in place of `target`. If fill throws, the
 * staging dir is removed and an existing target is untouched.
 */
export async function replaceDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const staging = tempPathFor(target);
  await mkdir(staging, { recursive: true });
  try {
    await fill(staging);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  if (await exists(target)) {
    const old = tempPathFor(target) + '.old';
    await rename(target, old);
    await rename(staging, target);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(staging, target);
  }
}
