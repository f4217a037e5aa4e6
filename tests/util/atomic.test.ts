/**
 * util/atomic.ts: content lands; a failing fill leaves the old file / directory byte-identical and
 * no temp files behind; while a replacement is being written a reader still sees the complete old
 * version; and the order of system calls (file fsync -> rename -> directory fsync) is the one that
 * makes the rename survive a crash, observed by wrapping node:fs/promises.
 */
import { afterEach, describe, it, mock, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RingtuneError } from '../../src/errors.ts';
import { replaceDirAtomic, writeFileAtomic, writeFileAtomicWith } from '../../src/util/atomic.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file below `dir` (relative path -> content), so "untouched" can be checked exactly. */
async function tree(dir: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) Object.assign(out, await tree(join(dir, e.name), join(prefix, e.name)));
    else out[join(prefix, e.name)] = await readFile(join(dir, e.name), 'utf8');
  }
  return out;
}

const leftovers = async (dir: string) => (await readdir(dir)).filter((f) => f.includes('.tmp-'));

describe('writeFileAtomic', () => {
  it('writes text and bytes, creating the parent directory', async (t) => {
    const dir = await tempDir(t);
    await writeFileAtomic(join(dir, 'a', 'b', 'note.txt'), 'héllo\n');
    await writeFileAtomic(join(dir, 'raw.bin'), new Uint8Array([0, 255, 7]));
    assert.equal(await readFile(join(dir, 'a', 'b', 'note.txt'), 'utf8'), 'héllo\n');
    assert.deepEqual([...(await readFile(join(dir, 'raw.bin')))], [0, 255, 7]);
    assert.deepEqual(await leftovers(dir), []);
    assert.deepEqual(await readdir(join(dir, 'a', 'b')), ['note.txt']);
  });

  it('overwrite: a reader sees the complete old content until the rename, then the new', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'state.json');
    await writeFileAtomic(target, 'old old old');
    const seenDuringWrite: string[] = [];
    await writeFileAtomicWith(target, async (fh) => {
      await fh.write('new');
      seenDuringWrite.push(await readFile(target, 'utf8'));
      await fh.write(' content');
      seenDuringWrite.push(await readFile(target, 'utf8'));
    });
    assert.deepEqual(seenDuringWrite, ['old old old', 'old old old']);
    assert.equal(await readFile(target, 'utf8'), 'new content'); // shorter than before: no old tail left
    assert.deepEqual(await readdir(dir), ['state.json']);
  });

  it('a failing body leaves the old file intact, removes the temp file and rethrows the same error', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'weights.bin');
    await writeFileAtomic(target, 'complete old version');
    const boom = new Error('tensor encoder crashed');
    await assert.rejects(
      writeFileAtomicWith(target, async (fh) => {
        await fh.write('half of the new ver');
        throw boom;
      }),
      (err) => err === boom, // not an I/O error: passed through unwrapped, a bug keeps its stack
    );
    assert.equal(await readFile(target, 'utf8'), 'complete old version');
    assert.deepEqual(await readdir(dir), ['weights.bin']);
  });

  it('an I/O failure (rename onto a non-empty directory) is a RingtuneError naming the target', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'keep'), 'x');
    await assert.rejects(writeFileAtomic(target, 'data'), (err: unknown) => {
      assert.ok(err instanceof RingtuneError, String(err));
      assert.match(err.message, /occupied: write failed, existing file left unchanged/);
      assert.equal(typeof (err.cause as NodeJS.ErrnoException).code, 'string');
      return true;
    });
    assert.deepEqual(await readdir(dir), ['occupied']);
    assert.deepEqual(await readdir(target), ['keep']);
  });
});

describe('replaceDirAtomic', () => {
  it('creates the directory with what fill wrote', async (t) => {
    const parent = await tempDir(t);
    const target = join(parent, 'ckpt');
    await replaceDirAtomic(target, async (staging) => {
      await writeFile(join(staging, 'a.txt'), 'A');
      await mkdir(join(staging, 'sub'));
      await writeFile(join(staging, 'sub', 'b.txt'), 'B');
    });
    assert.deepEqual(await tree(target), { 'a.txt': 'A', [join('sub', 'b.txt')]: 'B' });
    assert.deepEqual(await readdir(parent), ['ckpt']);
  });

  it('overwrite replaces the whole directory (no old file survives) and the old one stays whole until then', async (t) => {
    const parent = await tempDir(t);
    const target = join(parent, 'model');
    await replaceDirAtomic(target, async (s) => {
      await writeFile(join(s, 'config.json'), 'old config');
      await writeFile(join(s, 'model-00001-of-00002.safetensors'), 'old shard');
    });
    let seenDuringFill: Record<string, string> = {};
    await replaceDirAtomic(target, async (s) => {
      await writeFile(join(s, 'config.json'), 'new config');
      seenDuringFill = await tree(target);
      await writeFile(join(s, 'model.safetensors'), 'new weights');
    });
    assert.deepEqual(seenDuringFill, { 'config.json': 'old config', 'model-00001-of-00002.safetensors': 'old shard' });
    assert.deepEqual(await tree(target), { 'config.json': 'new config', 'model.safetensors': 'new weights' });
    assert.deepEqual(await readdir(parent), ['model'], 'no staging or .old directory left behind');
  });

  it('a failing fill leaves the old directory intact and no staging directory behind', async (t) => {
    const parent = await tempDir(t);
    const target = join(parent, 'model');
    await replaceDirAtomic(target, (s) => writeFile(join(s, 'config.json'), 'old config'));
    const boom = new RingtuneError('bad tensors');
    await assert.rejects(
      replaceDirAtomic(target, async (s) => {
        await writeFile(join(s, 'config.json'), 'half-written');
        throw boom;
      }),
      (err) => err === boom,
    );
    assert.deepEqual(await tree(target), { 'config.json': 'old config' });
    assert.deepEqual(await readdir(parent), ['model']);
  });

  it('a failing fill with no existing target leaves nothing at all', async (t) => {
    const parent = await tempDir(t);
    await assert.rejects(
      replaceDirAtomic(join(parent, 'fresh'), async (s) => {
        await writeFile(join(s, 'x'), 'x');
        await readFile(join(s, 'no-such-file')); // a system error from the caller's fill
      }),
      (err: unknown) => err instanceof RingtuneError && err.message.includes('fresh: write failed') && (err.cause as NodeJS.ErrnoException).code === 'ENOENT',
    );
    assert.deepEqual(await readdir(parent), []);
  });
});

// ------------------------------------------------------------------ system-call order

/**
 * Wraps open/rename of node:fs/promises (the builtin's ESM bindings follow the CJS object after
 * syncBuiltinESMExports) and logs `open <path>`, `fsync <path>`, `rename <from> -> <to>` with paths
 * relative to `root`; temp names are shown as `<tmp>`.
 */
function traceFs(root: string): string[] {
  const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
  const log: string[] = [];
  const rel = (p: string) => {
    const r = String(p).slice(root.length + 1) || '.';
    return r.replace(/\.[^/]*\.tmp-[0-9]+-[0-9a-f]+(\.old)?/g, (_m, old) => (old ? '<old>' : '<tmp>'));
  };
  const open = fsp.open;
  mock.method(fsp, 'open', async (path: string, ...rest: unknown[]) => {
    const fh: FileHandle = await (open as (...a: unknown[]) => Promise<FileHandle>)(path, ...rest);
    const sync = fh.sync.bind(fh);
    fh.sync = async () => { log.push(`fsync ${rel(path)}`); return sync(); };
    return fh;
  });
  const rename = fsp.rename;
  mock.method(fsp, 'rename', async (from: string, to: string) => {
    log.push(`rename ${rel(from)} -> ${rel(to)}`);
    return rename(from, to);
  });
  syncBuiltinESMExports();
  return log;
}

describe('fsync order', () => {
  afterEach(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });

  it('writeFileAtomic: fsync the temp file, rename, then fsync the directory', async (t) => {
    const root = await tempDir(t);
    await mkdir(join(root, 'out'));
    const log = traceFs(root);
    await writeFileAtomic(join(root, 'out', 'latest'), 'step-00000100\n');
    assert.deepEqual(log, ['fsync out/<tmp>', 'rename out/<tmp> -> out/latest', 'fsync out']);
  });

  it('replaceDirAtomic: fsync the staged files and dirs, swap, then fsync the parent', async (t) => {
    const root = await tempDir(t);
    const target = join(root, 'model');
    await replaceDirAtomic(target, (s) => writeFile(join(s, 'old.txt'), 'old'));
    const log = traceFs(root);
    await replaceDirAtomic(target, async (s) => {
      await mkdir(join(s, 'sub'));
      await writeFile(join(s, 'sub', 'b.txt'), 'B'); // plain writes: replaceDirAtomic must sync them
    });
    assert.deepEqual(log, [
      'fsync <tmp>/sub/b.txt',
      'fsync <tmp>/sub',
      'fsync <tmp>',
      'rename model -> <old>',
      'rename <tmp> -> model',
      'fsync .',
    ]);
    assert.deepEqual(await tree(target), { [join('sub', 'b.txt')]: 'B' });
  });
});
