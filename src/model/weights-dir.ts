/**
 * The weights of a Hugging Face model directory, in either layout the hub uses:
 *
 *   model.safetensors                                   one file, up to maxShardBytes (default 2 GiB)
 *   model.safetensors.index.json + model-0000k-of-0000N.safetensors
 *     index = {"metadata": {"total_size": <bytes>}, "weight_map": {"<tensor>": "<shard file>", ...}}
 *
 * File names and the index format are the ones transformers' `save_pretrained` writes. Each file is
 * one safetensors file (safetensors.ts); config.json, the tokenizer files and the mapping to model
 * parameters are model-dir.ts's. No TensorFlow.js here, so reading weights never loads a backend.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, RingtuneError } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import {
  corrupt, openForRead, planWrite, readSafetensors, writePlan,
  type HostTensor, type PlannedTensor, type SafetensorsContents, type SafetensorsWriteOptions,
} from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3;
/** Shard names we write and may therefore delete: model-00001-of-00003.safetensors. */
const OUR_SHARD = /^model-\d{5}-of-\d{5}\.safetensors$/;

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
  tensors: Iterable<[string, HostTensor]>,
  opts: SafetensorsWriteOptions & { maxShardBytes?: number } = {},
): Promise<string[]> {
  const plan = planWrite(tensors, opts, dir);
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0)) throw new InputError(`${dir}: maxShardBytes must be a positive number of bytes, got ${maxShardBytes}`);
  const totalBytes = plan.tensors.reduce((sum, t) => sum + t.nbytes, 0);

  await mkdir(dir, { recursive: true });
  const single = join(dir, SINGLE_FILE);
  const indexPath = join(dir, INDEX_FILE);
  const oldShards = await shardsListedIn(indexPath);

  if (totalBytes <= maxShardBytes) {
    await writePlan(single, plan);
    await removeStale(dir, [INDEX_FILE, ...oldShards]);
    return [single];
  }

  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let currentBytes = 0;
  for (const t of plan.tensors) {
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
    await writePlan(join(dir, names[i]!), { ...plan, tensors: group });
    for (const t of group) weightMap[t.name] = names[i]!;
  }
  await writeFileAtomic(indexPath, `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`);
  await removeStale(dir, [SINGLE_FILE, ...oldShards.filter((f) => !names.includes(f))]);
  return [...names.map((n) => join(dir, n)), indexPath];
}

/** Shard files named by an existing index that look like ours; [] if there is no readable index. */
async function shardsListedIn(indexPath: string): Promise<string[]> {
  try {
    const files = new Set((await readIndex(indexPath)).values());
    return [...files].filter((f) => OUR_SHARD.test(f));
  } catch {
    return [];
  }
}

async function removeStale(dir: string, files: string[]): Promise<void> {
  for (const file of files) await rm(join(dir, file), { force: true });
}

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
