/**
 * safetensors files and Hugging Face model directories, read into and written from float32 host
 * tensors. Format (github.com/huggingface/safetensors, README "Format"; validation follows its
 * `SafeTensors::read_metadata` / `Metadata::validate`):
 *
 *   [8 bytes: u64 LE N] [N bytes: UTF-8 JSON header] [byte buffer]
 *   header = {"__metadata__": {"k": "v"}, "name": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}, ...}
 *
 * Offsets are relative to the byte buffer; tensors are row-major, little-endian, and together cover the
 * buffer exactly (no gap, no overlap, no trailing bytes). The header may be padded with spaces.
 *
 * Reading: the header is read and every entry checked against the real file size before any tensor
 * memory is allocated, so a hostile header cannot make us allocate more than the file holds. Then each
 * tensor is read once, at its offset, straight into its own Float32Array (F32: no conversion; F16/BF16:
 * through one reused 2 MiB scratch buffer). Tensors come back in data_offsets order.
 *
 * Writing: tensors go into the header and the buffer in the caller's insertion order, all with one
 * dtype. (The reference writer sorts by dtype alignment, then name; with a single dtype per file that
 * is a name sort, and keeping the caller's order instead makes read(write(x)) return x's order.) The
 * header is space-padded to a multiple of 8 so the buffer starts 8-byte aligned, as the reference does.
 * Every file is written to `<path>.tmp-<pid>-<random>`, fsynced and renamed over the target.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CheckpointCorruptError, InputError, RingtuneError } from '../errors.ts';
import { decodeBf16Array, decodeF16Array, encodeBf16Array, encodeF16Array } from './half.ts';

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

export type StoredDType = 'F32' | 'F16' | 'BF16';
/** Row-major float32 tensor in host memory; `data.length` is the product of `shape` (1 for []). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}
export interface SafetensorsContents {
  /** Insertion order = order of data_offsets in the file (shard by shard for a sharded directory). */
  tensors: Map<string, HostTensor>;
  /** The dtype each tensor was stored with. */
  dtypes: Map<string, StoredDType>;
  /** `__metadata__` (string -> string); {} if absent. */
  metadata: Record<string, string>;
  /**
   * Tensors of other dtypes (I64 position_ids, BOOL mask buffers, ...), name -> dtype. They are not
   * loaded; the model's key table decides whether they are harmless buffers or an error.
   */
  skipped: Map<string, string>;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3;
/** The reference loader's limit (MAX_HEADER_SIZE in safetensors/src/tensor.rs). */
const MAX_HEADER_BYTES = 100_000_000;
/** Keep single read/write calls below the 2 GiB that Linux moves per syscall. */
const MAX_IO_BYTES = 1 << 30;
/** Elements per F16/BF16 conversion chunk (2 MiB of 16-bit values), reading and writing. */
const HALF_CHUNK = 1 << 20;

const STORED_BYTES: Record<StoredDType, number> = { F32: 4, F16: 2, BF16: 2 };
/** Bits per element of every dtype the reference knows; only F32/F16/BF16 can be loaded. */
const DTYPE_BITS = new Map<string, number>([
  ['BOOL', 8], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8], ['F8_E8M0', 8],
  ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6], ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32], ['I64', 64], ['U64', 64], ['F64', 64], ['C64', 64],
]);

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new RingtuneError('safetensors.ts assumes a little-endian host; this one is big-endian');
}

// ---------------------------------------------------------------- reading

/** One validated header entry; begin/end are offsets into the byte buffer. */
interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

function corrupt(path: string, what: string, tensor?: string): CheckpointCorruptError {
  const where = tensor === undefined ? path : `${path}: tensor "${tensor}"`;
  return new CheckpointCorruptError(`${where}: ${what}. The checkpoint cannot be loaded; re-download or re-save it.`);
}

export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const fh = await openForRead(path);
  try {
    const { size } = await fh.stat();
    const { entries, metadata, dataStart } = await readHeader(fh, size, path);

    const skipped = new Map(entries.filter((e) => !(e.dtype in STORED_BYTES)).map((e) => [e.name, e.dtype]));
    const tensors = new Map<string, HostTensor>();
    const dtypes = new Map<string, StoredDType>();
    // F16/BF16 bytes pass through one bounded scratch buffer (fresh, so 2-byte aligned for Uint16Array).
    const scratch = new Uint16Array(HALF_CHUNK);
    for (const e of entries) {
      if (skipped.has(e.name)) continue;
      const dtype = e.dtype as StoredDType;
      const data = new Float32Array(e.numel);
      const position = dataStart + e.begin;
      if (dtype === 'F32') {
        // Reading into the tensor's own buffer: no copy and no alignment question.
        await readExactly(fh, new Uint8Array(data.buffer), position, path, e.name);
      } else {
        for (let i = 0; i < e.numel; i += HALF_CHUNK) {
          const bits = scratch.subarray(0, Math.min(HALF_CHUNK, e.numel - i));
          await readExactly(fh, new Uint8Array(bits.buffer, 0, bits.byteLength), position + 2 * i, path, e.name);
          const out = data.subarray(i, i + bits.length);
          if (dtype === 'F16') decodeF16Array(bits, out);
          else decodeBf16Array(bits, out);
        }
      }
      tensors.set(e.name, { shape: e.shape, data });
      dtypes.set(e.name, dtype);
    }
    return { tensors, dtypes, metadata, skipped };
  } finally {
    await fh.close();
  }
}

async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InputError(`${path}: no such file; check the model directory path`, { cause: err });
    }
    throw new RingtuneError(`${path}: cannot open for reading: ${(err as Error).message}`, { cause: err });
  }
}

async function readExactly(fh: FileHandle, dst: Uint8Array, position: number, path: string, tensor?: string): Promise<void> {
  let done = 0;
  while (done < dst.byteLength) {
    const length = Math.min(dst.byteLength - done, MAX_IO_BYTES);
    const { bytesRead } = await fh.read(dst, done, length, position + done);
    if (bytesRead === 0) {
      throw corrupt(path, `file ended at byte ${position + done} while reading; it shrank while being read`, tensor);
    }
    done += bytesRead;
  }
}

async function readHeader(fh: FileHandle, size: number, path: string) {
  if (size < 8) throw corrupt(path, `file is ${size} bytes, too short for the 8-byte header length`);
  const prefix = new Uint8Array(8);
  await readExactly(fh, prefix, 0, path);
  // u64 read as BigInt so 2^63 stays 2^63 and is rejected before we allocate anything.
  const declared = new DataView(prefix.buffer).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(path, `header length ${declared} exceeds the 100 MB limit (file is ${size} bytes); not a safetensors file?`);
  }
  const headerLen = Number(declared);
  if (8 + headerLen > size) {
    throw corrupt(path, `header length ${headerLen} runs past the end of the file (${size} bytes); the file is truncated`);
  }
  const headerBytes = new Uint8Array(headerLen);
  await readExactly(fh, headerBytes, 8, path);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (err) {
    throw corrupt(path, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(path, `header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(json)) throw corrupt(path, `header is not a JSON object (got ${describe(json)})`);

  const dataLen = size - 8 - headerLen;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(value, path);
    else entries.push(parseEntry(name, value, dataLen, path));
  }
  checkContiguous(entries, dataLen, path);
  return { entries, metadata, dataStart: 8 + headerLen };
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (value === null) return {}; // the reference reads `null` as "no metadata"
  if (!isPlainObject(value)) throw corrupt(path, `__metadata__ must be an object of strings, got ${describe(value)}`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw corrupt(path, `__metadata__ value for key "${key}" must be a string, got ${describe(v)}`);
  }
  return { ...(value as Record<string, string>) };
}

function parseEntry(name: string, value: unknown, dataLen: number, path: string): Entry {
  if (!isPlainObject(value)) throw corrupt(path, `entry must be an object with dtype, shape and data_offsets, got ${describe(value)}`, name);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw corrupt(path, `missing or non-string "dtype" (got ${describe(dtype)})`, name);
  const bits = DTYPE_BITS.get(dtype);
  if (bits === undefined) throw corrupt(path, `unknown dtype "${dtype}"`, name);
  if (!Array.isArray(shape)) throw corrupt(path, `missing or non-array "shape" (got ${describe(shape)})`, name);
  if (!shape.every(isNonNegativeInt)) throw corrupt(path, `shape ${JSON.stringify(shape)} has a negative or non-integer dimension`, name);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw corrupt(path, `"data_offsets" must be [begin, end] non-negative integers, got ${JSON.stringify(offsets) ?? 'nothing'}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw corrupt(path, `data_offsets [${begin}, ${end}] end before they begin`, name);

  let numel = 1;
  for (const dim of shape as number[]) {
    numel *= dim;
    if (numel * bits > Number.MAX_SAFE_INTEGER) throw corrupt(path, `shape ${JSON.stringify(shape)} is too large to address`, name);
  }
  if ((numel * bits) % 8 !== 0) throw corrupt(path, `shape ${JSON.stringify(shape)} of ${dtype} is not a whole number of bytes`, name);
  const nbytes = (numel * bits) / 8;
  if (end - begin !== nbytes) {
    throw corrupt(
      path,
      `shape ${JSON.stringify(shape)} of ${dtype} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin} (wrong shape or dtype for its data)`,
      name,
    );
  }
  if (end > dataLen) {
    throw corrupt(path, `data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes after the header); the file is truncated`, name);
  }
  return { name, dtype, shape: [...(shape as number[])], numel, begin, end };
}

/** Sort by offsets and require the tensors to tile the buffer exactly, like Metadata::validate. */
function checkContiguous(entries: Entry[], dataLen: number, path: string): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end); // stable: zero-size ties keep header order
  let cursor = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin < cursor) {
      throw corrupt(path, `data_offsets [${e.begin}, ${e.end}] overlap tensor "${previous!.name}" [${previous!.begin}, ${previous!.end}]`, e.name);
    }
    if (e.begin > cursor) {
      throw corrupt(path, `data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - cursor} bytes after offset ${cursor}; tensors must be contiguous`, e.name);
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLen) {
    throw corrupt(path, `${dataLen - cursor} bytes after the last tensor (offset ${cursor}) belong to no tensor; the buffer must end with the last tensor`);
  }
}

// ---------------------------------------------------------------- writing

/** A tensor checked for writing: its byte size in the target dtype is known. */
interface Planned {
  name: string;
  shape: number[];
  data: Float32Array;
  nbytes: number;
}

interface WriteOptions {
  metadata?: Record<string, string>;
  dtype?: StoredDType;
}

export async function writeSafetensors(
  path: string,
  tensors: Map<string, HostTensor> | Iterable<[string, HostTensor]>,
  opts: WriteOptions = {},
): Promise<void> {
  const dtype = checkDtype(opts.dtype, path);
  const metadata = checkMetadata(opts.metadata, path);
  await writePlanned(path, planTensors(tensors, dtype, path), dtype, metadata);
}

function checkDtype(dtype: unknown, where: string): StoredDType {
  if (dtype === undefined) return 'F32';
  if (typeof dtype === 'string' && dtype in STORED_BYTES) return dtype as StoredDType;
  throw new InputError(`${where}: cannot write dtype ${JSON.stringify(dtype)}; use F32, F16 or BF16`);
}

function checkMetadata(metadata: unknown, where: string): Record<string, string> {
  if (metadata === undefined) return {};
  const bad = isPlainObject(metadata) ? Object.entries(metadata).filter(([, v]) => typeof v !== 'string') : [];
  if (!isPlainObject(metadata) || bad.length > 0) {
    throw new InputError(`${where}: metadata must map strings to strings; bad keys: ${bad.map(([k]) => k).join(', ') || describe(metadata)}`);
  }
  return metadata as Record<string, string>;
}

/** Check every tensor before any file is touched; one error lists all problems. */
function planTensors(tensors: Map<string, HostTensor> | Iterable<[string, HostTensor]>, dtype: StoredDType, where: string): Planned[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const planned: Planned[] = [];
  for (const [name, tensor] of tensors) {
    if (typeof name !== 'string') { problems.push(`tensor name ${describe(name)} is not a string`); continue; }
    if (name === '__metadata__') { problems.push('"__metadata__" is reserved and cannot name a tensor'); continue; }
    if (seen.has(name)) { problems.push(`"${name}" appears twice`); continue; }
    seen.add(name);
    const shape = tensor?.shape;
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      problems.push(`"${name}": shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
      continue;
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    if (!(tensor.data instanceof Float32Array)) { problems.push(`"${name}": data must be a Float32Array`); continue; }
    if (tensor.data.length !== numel) {
      problems.push(`"${name}": shape ${JSON.stringify(shape)} holds ${numel} elements but data has ${tensor.data.length}`);
      continue;
    }
    planned.push({ name, shape, data: tensor.data, nbytes: numel * STORED_BYTES[dtype] });
  }
  if (problems.length > 0) throw new InputError(`${where}: cannot write tensors: ${problems.join('; ')}`);
  return planned;
}

function encodeHeader(planned: Planned[], dtype: StoredDType, metadata: Record<string, string>): Uint8Array {
  // Built by hand so keys keep insertion order (JSON.stringify would hoist integer-like names).
  const parts: string[] = [];
  if (Object.keys(metadata).length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of planned) {
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype, shape: t.shape, data_offsets: [offset, offset + t.nbytes] })}`);
    offset += t.nbytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20); // spaces: data starts 8-aligned
  padded.set(json);
  return padded;
}

async function writePlanned(path: string, planned: Planned[], dtype: StoredDType, metadata: Record<string, string>): Promise<void> {
  const header = encodeHeader(planned, dtype, metadata);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  await writeAtomically(path, async (fh) => {
    await writeAll(fh, prefix);
    await writeAll(fh, header);
    const scratch = dtype === 'F32' ? undefined : new Uint16Array(HALF_CHUNK);
    for (const { data } of planned) {
      if (scratch === undefined) {
        await writeAll(fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        continue;
      }
      for (let i = 0; i < data.length; i += HALF_CHUNK) {
        const src = data.subarray(i, Math.min(i + HALF_CHUNK, data.length));
        const dst = scratch.subarray(0, src.length);
        if (dtype === 'F16') encodeF16Array(src, dst);
        else encodeBf16Array(src, dst);
        await writeAll(fh, new Uint8Array(dst.buffer, 0, dst.byteLength));
      }
    }
  });
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, MAX_IO_BYTES));
    done += bytesWritten;
  }
}

/**
 * Write `target` through a temp file in the same directory: write, fsync, rename. On any failure the
 * temp file is removed and an existing target is left as it was.
 */
async function writeAtomically(target: string, body: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await body(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    if (err instanceof RingtuneError) throw err;
    throw new RingtuneError(`${target}: write failed, existing file left unchanged: ${(err as Error).message}`, { cause: err });
  }
  await syncDirectory(dirname(target));
}

/** fsync the directory so the rename itself survives a crash (best effort: not every platform allows it). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
  } catch {
    // ignore: durability of the rename is a bonus, atomicity already holds
  }
}

// ---------------------------------------------------------------- model directories

/**
 * `model.safetensors` if present (the Hugging Face loader's preference too), else the shards named by
 * `model.safetensors.index.json`, read in shard-file-name order. Every tensor must be in exactly the
 * shard the index names.
 */
export async function readModelWeights(dir: string): Promise<SafetensorsContents> {
  const single = join(dir, SINGLE_FILE);
  if (await exists(single)) return readSafetensors(single);
  const indexPath = join(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    throw new InputError(`${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found; point at a Hugging Face model directory with safetensors weights`);
  }
  const weightMap = await readIndex(indexPath);

  const byShard = new Map<string, string[]>();
  for (const [tensor, file] of weightMap) byShard.set(file, [...(byShard.get(file) ?? []), tensor]);
  const shardFiles = [...byShard.keys()].sort();
  const missing: string[] = [];
  for (const file of shardFiles) if (!(await exists(join(dir, file)))) missing.push(`"${file}" (holds "${byShard.get(file)![0]}")`);
  if (missing.length > 0) throw corrupt(indexPath, `shard file ${missing.join(', ')} listed in weight_map is missing`);

  const out: SafetensorsContents = { tensors: new Map(), dtypes: new Map(), metadata: {}, skipped: new Map() };
  const foundIn = new Map<string, string>();
  for (const file of shardFiles) {
    const shardPath = join(dir, file);
    const shard = await readSafetensors(shardPath);
    for (const [name, tensor] of shard.tensors) {
      const earlier = foundIn.get(name);
      if (earlier !== undefined) throw corrupt(shardPath, `also stored in shard "${earlier}" (duplicate across shards)`, name);
      const mapped = weightMap.get(name);
      if (mapped === undefined) throw corrupt(shardPath, `is in this shard but not in the weight_map of ${indexPath}`, name);
      if (mapped !== file) throw corrupt(shardPath, `is in this shard but ${indexPath} maps it to "${mapped}"`, name);
      foundIn.set(name, file);
      out.tensors.set(name, tensor);
      out.dtypes.set(name, shard.dtypes.get(name)!);
    }
    for (const [name, dtype] of shard.skipped) {
      if (weightMap.get(name) !== file) throw corrupt(shardPath, `is in this shard but ${indexPath} maps it elsewhere or not at all`, name);
      out.skipped.set(name, dtype);
    }
    for (const name of byShard.get(file)!) {
      if (!shard.tensors.has(name) && !shard.skipped.has(name)) throw corrupt(shardPath, `is listed for this shard in ${indexPath} but the shard does not contain it`, name);
    }
    out.metadata = { ...shard.metadata, ...out.metadata }; // shards normally agree; the first one wins
  }
  return out;
}

/** weight_map of an index file, tensor -> shard file name; shard names must be plain file names. */
async function readIndex(indexPath: string): Promise<Map<string, string>> {
  const fh = await openForRead(indexPath);
  let text: string;
  try {
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw corrupt(indexPath, `index is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(json) || !isPlainObject(json.weight_map)) {
    throw corrupt(indexPath, 'index must be a JSON object with a "weight_map" object of tensor name -> shard file');
  }
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(json.weight_map)) {
    if (typeof file !== 'string' || file === '' || file === '.' || file === '..' || /[\\/]/.test(file)) {
      throw corrupt(indexPath, `weight_map entry must be a shard file name in the same directory, got ${JSON.stringify(file)}`, tensor);
    }
    map.set(tensor, file);
  }
  return map;
}

/**
 * One `model.safetensors` if the tensors fit in `maxShardBytes` (default 2 GiB), else shards
 * `model-00001-of-0000N.safetensors` filled greedily in insertion order (a tensor larger than the
 * limit gets a shard of its own) plus the index. Each file is written atomically; shards before the
 * index. Only once the new files are in place are the other layout's files removed (the old index and
 * the shards it listed, or the old single file). Returns the paths written.
 */
export async function writeModelWeights(
  dir: string,
  tensors: Map<string, HostTensor> | Iterable<[string, HostTensor]>,
  opts: WriteOptions & { maxShardBytes?: number } = {},
): Promise<string[]> {
  const dtype = checkDtype(opts.dtype, dir);
  const metadata = checkMetadata(opts.metadata, dir);
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0)) throw new InputError(`${dir}: maxShardBytes must be a positive number of bytes, got ${maxShardBytes}`);
  const planned = planTensors(tensors, dtype, dir);
  const totalBytes = planned.reduce((sum, t) => sum + t.nbytes, 0);

  await mkdir(dir, { recursive: true });
  const single = join(dir, SINGLE_FILE);
  const indexPath = join(dir, INDEX_FILE);
  const oldShards = await shardsListedIn(indexPath);

  if (totalBytes <= maxShardBytes) {
    await writePlanned(single, planned, dtype, metadata);
    await removeStale(dir, [INDEX_FILE, ...oldShards]);
    return [single];
  }

  const groups: Planned[][] = [];
  let current: Planned[] = [];
  let currentBytes = 0;
  for (const t of planned) {
    if (current.length > 0 && currentBytes + t.nbytes > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += t.nbytes;
  }
  groups.push(current);

  const pad = (i: number) => String(i).padStart(5, '0');
  const names = groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (const [i, group] of groups.entries()) {
    await writePlanned(join(dir, names[i]!), group, dtype, metadata);
    for (const t of group) weightMap[t.name] = names[i]!;
  }
  const index = new TextEncoder().encode(`${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`);
  await writeAtomically(indexPath, (fh) => writeAll(fh, index));
  await removeStale(dir, [SINGLE_FILE, ...oldShards.filter((f) => !names.includes(f))]);
  return [...names.map((n) => join(dir, n)), indexPath];
}

/** Shard files named by an existing index that look like ours; [] if there is no readable index. */
async function shardsListedIn(indexPath: string): Promise<string[]> {
  try {
    const files = new Set((await readIndex(indexPath)).values());
    return [...files].filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  } catch {
    return [];
  }
}

async function removeStale(dir: string, files: string[]): Promise<void> {
  for (const file of files) await rm(join(dir, file), { force: true });
}

// ---------------------------------------------------------------- small helpers

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new RingtuneError(`${path}: cannot stat: ${(err as Error).message}`, { cause: err });
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  return Array.isArray(v) ? 'an array' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}
