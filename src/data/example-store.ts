/**
 * One split of the prepared-dataset cache on disk: examples as fixed-width little-endian arrays, read
 * back one example at a time (Megatron's indexed dataset: a `.bin` of tokens plus an `.idx` of
 * offsets). Four files per split, `<prefix>.idx|.tok|.mask|.src`:
 *
 *   .idx   header, then one 32-byte entry per example:
 *            0  magic "RTDSIDX\0"            8  format version u32     12  header JSON bytes u32
 *           16  examples u64                 24  tokens u64            32  header JSON (UTF-8),
 *           zero-padded to a multiple of 8; entries follow:
 *            +0 first token u64   +8 first source byte u64   +16 tokens u32   +20 source bytes u32
 *           +24 label i32 (-1 for causal LM)                  +28 reserved (0)
 *   .tok   token ids, u32 each              (tokens x 4 bytes)
 *   .mask  loss mask, u8 each (causal LM)   (tokens bytes; empty for classification)
 *   .src   each example's source ("file:line", packed rows "a:1+a:2"), UTF-8
 *
 * Node has no mmap: a reader keeps the four files open and reads an example's byte ranges with
 * positional reads (fs.readSync at an offset) into buffers it reuses, so what a rank touches is its
 * own examples' bytes, and its memory is one example, whatever the file size. The page cache does what
 * a mapping would. Nothing is held per example: a million-example split costs the same as ten.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { RingtuneError } from '../errors.ts';
import type { ExampleSource } from './dataset.ts';
import type { ClsExample, LmExample } from './examples.ts';

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('RTDSIDX\0', 'latin1');
const FIXED_HEADER_BYTES = 32;
const ENTRY_BYTES = 32;

/** What a split's header records: the cache key and the inputs it was derived from (cache-key.ts). */
export interface StoreHeader {
  key: string;
  task: 'causal-lm' | 'classification';
  [field: string]: unknown;
}

/** A cache file that is truncated, corrupt, from another format version or for other inputs: never used. */
export class DataCacheError extends RingtuneError {
  override readonly name: string = 'DataCacheError';
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}; delete the cache directory (or run \`ringtune data prepare JOB --force\`) to rebuild it`);
  }
}

/** Appends examples to a split's four files through 1 MiB buffers; finish() writes the header. */
export class StoreWriter {
  private count = 0;
  private tokens = 0;
  private srcBytes = 0;
  private readonly entry = Buffer.alloc(ENTRY_BYTES);
  private constructor(
    private readonly files: { idx: Buffered; tok: Buffered; mask: Buffered; src: Buffered },
    private readonly isLm: boolean,
  ) {}

  static async create(prefix: string, header: StoreHeader): Promise<StoreWriter> {
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const headerBytes = FIXED_HEADER_BYTES + Math.ceil(json.length / 8) * 8;
    const files = {
      idx: await Buffered.open(`${prefix}.idx`), tok: await Buffered.open(`${prefix}.tok`),
      mask: await Buffered.open(`${prefix}.mask`), src: await Buffered.open(`${prefix}.src`),
    };
    const head = Buffer.alloc(headerBytes);
    MAGIC.copy(head, 0);
    head.writeUInt32LE(FORMAT_VERSION, 8);
    head.writeUInt32LE(json.length, 12);
    json.copy(head, FIXED_HEADER_BYTES);
    await files.idx.write(head); // counts patched by finish()
    return new StoreWriter(files, header.task === 'causal-lm');
  }

  get examples(): number {
    return this.count;
  }

  /** One example: `mask` for causal LM, `label` (>= 0) for classification. */
  async append(tokens: ArrayLike<number>, source: string, mask?: ArrayLike<number>, label = -1): Promise<void> {
    const src = Buffer.from(source, 'utf8');
    const e = this.entry;
    e.writeBigUInt64LE(BigInt(this.tokens), 0);
    e.writeBigUInt64LE(BigInt(this.srcBytes), 8);
    e.writeUInt32LE(tokens.length, 16);
    e.writeUInt32LE(src.length, 20);
    e.writeInt32LE(label, 24);
    e.writeUInt32LE(0, 28);
    await this.files.idx.write(e);
    const tok = Buffer.allocUnsafe(tokens.length * 4);
    for (let i = 0; i < tokens.length; i++) tok.writeUInt32LE(tokens[i], i * 4);
    await this.files.tok.write(tok);
    if (this.isLm) await this.files.mask.write(Uint8Array.from(mask!));
    await this.files.src.write(src);
    this.count++;
    this.tokens += tokens.length;
    this.srcBytes += src.length;
  }

  /** Flushes, writes the counts into the header, fsyncs and closes all four files. */
  async finish(): Promise<{ examples: number; tokens: number }> {
    const counts = Buffer.alloc(16);
    counts.writeBigUInt64LE(BigInt(this.count), 0);
    counts.writeBigUInt64LE(BigInt(this.tokens), 8);
    for (const f of Object.values(this.files)) await f.flush();
    await this.files.idx.fh.write(counts, 0, 16, 16);
    for (const f of Object.values(this.files)) await f.close();
    return { examples: this.count, tokens: this.tokens };
  }

  /** On failure: close without caring about the content (the staging directory is removed). */
  async abandon(): Promise<void> {
    for (const f of Object.values(this.files)) await f.fh.close().catch(() => undefined);
  }
}

class Buffered {
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  private constructor(readonly fh: FileHandle) {}
  static async open(path: string): Promise<Buffered> {
    return new Buffered(await open(path, 'wx'));
  }
  async write(bytes: Uint8Array): Promise<void> {
    if (this.used + bytes.length > this.buf.length) await this.flush();
    if (bytes.length > this.buf.length) {
      await this.fh.write(bytes);
      return;
    }
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }
  async flush(): Promise<void> {
    if (this.used > 0) await this.fh.write(this.buf, 0, this.used);
    this.used = 0;
  }
  async close(): Promise<void> {
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
  }
}

/** A reader dropped without close() (a trainer keeps its split until exit) still gives its descriptors back. */
const unclosed = new FinalizationRegistry<number[]>((fds) => {
  for (const fd of fds) closeSync(fd);
});

/**
 * A split opened for reading: `at(i)` reads example i's bytes (four positional reads). Validates on
 * open what can be checked without reading every byte: magic, version, key, and that every file's
 * size matches the header's counts; an entry pointing outside its file is caught when read.
 */
export class StoreReader<E extends LmExample | ClsExample = LmExample | ClsExample> implements ExampleSource<E> {
  readonly length: number;
  readonly totalTokens: number;
  readonly header: StoreHeader;
  private readonly entriesAt: number;
  private readonly entry = Buffer.alloc(ENTRY_BYTES);
  private tokBuf = Buffer.alloc(4096);
  private maskBuf = Buffer.alloc(1024);
  private srcBuf = Buffer.alloc(1024);
  private readonly isLm: boolean;
  private closed = false;

  private constructor(private readonly prefix: string, private readonly fds: { idx: number; tok: number; mask: number; src: number }) {
    const fixed = Buffer.alloc(FIXED_HEADER_BYTES);
    const idxFile = `${prefix}.idx`;
    const idxSize = fstatSync(fds.idx).size;
    if (readSync(fds.idx, fixed, 0, FIXED_HEADER_BYTES, 0) < FIXED_HEADER_BYTES || !fixed.subarray(0, 8).equals(MAGIC)) {
      throw new DataCacheError(idxFile, 'not a ringtune dataset index (bad magic)');
    }
    const version = fixed.readUInt32LE(8);
    if (version !== FORMAT_VERSION) throw new DataCacheError(idxFile, `format version ${version}, this ringtune reads ${FORMAT_VERSION}`);
    const jsonBytes = fixed.readUInt32LE(12);
    this.length = Number(fixed.readBigUInt64LE(16));
    this.totalTokens = Number(fixed.readBigUInt64LE(24));
    this.entriesAt = FIXED_HEADER_BYTES + Math.ceil(jsonBytes / 8) * 8;
    const json = Buffer.alloc(jsonBytes);
    if (this.entriesAt > idxSize || readSync(fds.idx, json, 0, jsonBytes, FIXED_HEADER_BYTES) < jsonBytes) throw new DataCacheError(idxFile, 'truncated header');
    try {
      this.header = JSON.parse(json.toString('utf8')) as StoreHeader;
    } catch {
      throw new DataCacheError(idxFile, 'header is not valid JSON');
    }
    this.isLm = this.header.task === 'causal-lm';
    const expect = (file: string, fd: number, bytes: number) => {
      const size = fstatSync(fd).size;
      if (size !== bytes) throw new DataCacheError(file, `${size} bytes, the index says ${bytes} (truncated or overwritten)`);
    };
    expect(idxFile, fds.idx, this.entriesAt + this.length * ENTRY_BYTES);
    expect(`${prefix}.tok`, fds.tok, this.totalTokens * 4);
    expect(`${prefix}.mask`, fds.mask, this.isLm ? this.totalTokens : 0);
  }

  /** Opens `<prefix>.*`; `key`: the cache key the caller derived from its inputs (a different one is a foreign cache). */
  static open<E extends LmExample | ClsExample>(prefix: string, key?: string): StoreReader<E> {
    const fds: Partial<Record<'idx' | 'tok' | 'mask' | 'src', number>> = {};
    try {
      for (const ext of ['idx', 'tok', 'mask', 'src'] as const) {
        try {
          fds[ext] = openSync(`${prefix}.${ext}`, 'r');
        } catch (cause) {
          throw new DataCacheError(`${prefix}.${ext}`, `cannot open (${(cause as Error).message})`);
        }
      }
      const r = new StoreReader<E>(prefix, fds as Record<'idx' | 'tok' | 'mask' | 'src', number>);
      if (key !== undefined && r.header.key !== key) throw new DataCacheError(`${prefix}.idx`, `built for other inputs (key ${r.header.key}, expected ${key})`);
      unclosed.register(r, Object.values(fds), r);
      return r;
    } catch (err) {
      for (const fd of Object.values(fds)) closeSync(fd);
      throw err;
    }
  }

  at(i: number): E | undefined {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) return undefined;
    const e = this.entry;
    this.read('idx', e, ENTRY_BYTES, this.entriesAt + i * ENTRY_BYTES);
    const tokAt = Number(e.readBigUInt64LE(0));
    const srcAt = Number(e.readBigUInt64LE(8));
    const n = e.readUInt32LE(16);
    const srcLen = e.readUInt32LE(20);
    const label = e.readInt32LE(24);
    if (n * 4 > this.tokBuf.length) this.tokBuf = Buffer.alloc(n * 4);
    this.read('tok', this.tokBuf, n * 4, tokAt * 4);
    const tokens = new Array<number>(n);
    for (let t = 0; t < n; t++) tokens[t] = this.tokBuf.readUInt32LE(t * 4);
    if (srcLen > this.srcBuf.length) this.srcBuf = Buffer.alloc(srcLen);
    this.read('src', this.srcBuf, srcLen, srcAt);
    const source = this.srcBuf.toString('utf8', 0, srcLen);
    if (!this.isLm) return { tokens, label, source } as E;
    if (n > this.maskBuf.length) this.maskBuf = Buffer.alloc(n);
    this.read('mask', this.maskBuf, n, tokAt);
    return { tokens, lossMask: Array.from(this.maskBuf.subarray(0, n)), source } as E;
  }

  /** Examples [start, end) read into memory (the eval split; tests). */
  slice(start = 0, end = this.length): E[] {
    const out: E[] = [];
    for (let i = Math.max(0, start); i < Math.min(end, this.length); i++) out.push(this.at(i)!);
    return out;
  }

  /** Closes the four files; a second call does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    unclosed.unregister(this);
    for (const fd of Object.values(this.fds)) closeSync(fd);
  }

  private read(ext: 'idx' | 'tok' | 'mask' | 'src', buf: Buffer, bytes: number, position: number): void {
    if (bytes === 0) return;
    if (readSync(this.fds[ext], buf, 0, bytes, position) < bytes) throw new DataCacheError(`${this.prefix}.${ext}`, `an index entry points past the end of the file (offset ${position})`);
  }
}
