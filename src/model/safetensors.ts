/**
 * The safetensors file format: one file read into, or written from, float32 host tensors. Sharded
 * model directories (model.safetensors.index.json) are in weights-dir.ts. Format
 * (github.com/huggingface/safetensors, README "Format"; validation follows its
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
 * through one reused 2 MiB scratch buffer, half.ts). Tensors come back in data_offsets order.
 *
 * Writing: tensors go into the header and the buffer in the caller's insertion order, all with one
 * dtype. (The reference writer sorts by dtype alignment, then name; with a single dtype per file that
 * is a name sort, and keeping the caller's order instead makes read(write(x)) return x's order.) The
 * header is space-padded to a multiple of 8 so the buffer starts 8-byte aligned, as the reference does.
 * The bytes are streamed through util/atomic.ts (temp file, fsync, rename, directory fsync).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { CheckpointCorruptError, InputError, RingtuneError } from '../errors.ts';
import { writeFileAtomicWith } from '../util/atomic.ts';
import { decodeBf16Array, decodeF16Array, encodeBf16Array, encodeF16Array } from './half.ts';

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

/** The error for a file that cannot be loaded, naming the file and the tensor (weights-dir.ts uses it too). */
export function corrupt(path: string, what: string, tensor?: string): CheckpointCorruptError {
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

/** open(path, "r") with errors that say what to do: a missing file is an InputError. */
export async function openForRead(path: string): Promise<FileHandle> {
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

export interface SafetensorsWriteOptions {
  metadata?: Record<string, string>;
  /** One dtype for every tensor in the file; F32 if omitted. */
  dtype?: StoredDType;
}

/** What planWrite checked: the file's dtype and metadata, and each tensor's stored size in it. */
export interface WritePlan {
  dtype: StoredDType;
  metadata: Record<string, string>;
  /** In the caller's order, which is the order in the file. */
  tensors: PlannedTensor[];
}
export interface PlannedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  /** Bytes this tensor takes in the file at the plan's dtype. */
  nbytes: number;
}

export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, HostTensor]>,
  opts: SafetensorsWriteOptions = {},
): Promise<void> {
  await writePlan(path, planWrite(tensors, opts, path));
}

/**
 * Checks the options and every tensor before any file is touched; one InputError, starting with
 * `where`, lists all problems. A plan (or a slice of its tensors, e.g. one shard) is written by writePlan.
 */
export function planWrite(tensors: Iterable<[string, HostTensor]>, opts: SafetensorsWriteOptions, where: string): WritePlan {
  const dtype = checkDtype(opts.dtype, where);
  const metadata = checkMetadata(opts.metadata, where);
  return { dtype, metadata, tensors: planTensors(tensors, dtype, where) };
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

function planTensors(tensors: Iterable<[string, HostTensor]>, dtype: StoredDType, where: string): PlannedTensor[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const planned: PlannedTensor[] = [];
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

function encodeHeader({ tensors, dtype, metadata }: WritePlan): Uint8Array {
  // Built by hand so keys keep insertion order (JSON.stringify would hoist integer-like names).
  const parts: string[] = [];
  if (Object.keys(metadata).length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype, shape: t.shape, data_offsets: [offset, offset + t.nbytes] })}`);
    offset += t.nbytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20); // spaces: data starts 8-aligned
  padded.set(json);
  return padded;
}

/** Writes one file holding `plan.tensors` in order; atomically, streaming (no whole-file buffer). */
export async function writePlan(path: string, plan: WritePlan): Promise<void> {
  const { dtype } = plan;
  const header = encodeHeader(plan);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  await writeFileAtomicWith(path, async (fh) => {
    await writeAll(fh, prefix);
    await writeAll(fh, header);
    const scratch = dtype === 'F32' ? undefined : new Uint16Array(HALF_CHUNK);
    for (const { data } of plan.tensors) {
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

// ---------------------------------------------------------------- small helpers

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
