/**
 * Model-directory weights (weights-dir.ts): one model.safetensors or an index plus shards, the greedy
 * shard split with byte counts worked out by hand, switching layouts, and every way a sharded
 * directory can disagree with its index. The shard headers are checked with an independent parser.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointCorruptError, InputError } from '../../src/errors.ts';
import { writeSafetensors, type HostTensor } from '../../src/model/safetensors.ts';
import { readModelWeights, writeModelWeights } from '../../src/model/weights-dir.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-wd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function tensor(shape: number[], values?: number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: new Float32Array(values ?? Array.from({ length: n }, (_, i) => i * 0.25 - 1)) };
}

/** Header keys of a safetensors file, read without src/: u64 LE length, then the JSON text. */
function headerKeys(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  return Object.keys(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))));
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

async function expectCorrupt(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CheckpointCorruptError, `expected CheckpointCorruptError, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `message lacks ${JSON.stringify(f)}: ${err.message}`);
    return true;
  });
}

async function tempFilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.includes('.tmp-'));
}

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of (await readdir(dir)).sort()) out.set(f, (await readFile(join(dir, f))).toString('hex'));
  return out;
}

describe('weights of a model directory', () => {
  // Stored sizes (F32): 40, 12, 80, 4, 0, 20 bytes. Greedy with 64-byte shards:
  // [t0 t1] = 52 | [t2] = 80 (alone, over the limit) | [t3 t4 t5] = 24.
  const model = (): Map<string, HostTensor> =>
    new Map([
      ['t0', tensor([10])], ['t1', tensor([3])], ['t2', tensor([4, 5])],
      ['t3', tensor([], [42])], ['t4', tensor([0, 3])], ['t5', tensor([5])],
    ]);
  const shard = (i: number, n: number) => `model-0000${i}-of-0000${n}.safetensors`;

  it('writes one model.safetensors by default and reads it back', async (t) => {
    const dir = await tempDir(t);
    assert.deepEqual(await writeModelWeights(dir, model(), { metadata: { format: 'pt' } }), [join(dir, 'model.safetensors')]);
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    const got = await readModelWeights(dir);
    assert.deepEqual([...got.tensors.keys()], [...model().keys()]);
    assert.deepEqual(got.metadata, { format: 'pt' });
  });

  it('shards with a tiny maxShardBytes and reads the shards back in order', async (t) => {
    const dir = await tempDir(t);
    const input = model();
    const files = await writeModelWeights(dir, input, { maxShardBytes: 64, metadata: { format: 'pt' } });
    assert.deepEqual(files, [...[1, 2, 3].map((i) => join(dir, shard(i, 3))), join(dir, 'model.safetensors.index.json')]);
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.deepEqual(index, {
      metadata: { total_size: 156 },
      weight_map: { t0: shard(1, 3), t1: shard(1, 3), t2: shard(2, 3), t3: shard(3, 3), t4: shard(3, 3), t5: shard(3, 3) },
    });
    assert.deepEqual(headerKeys(await readFile(join(dir, shard(3, 3)))), ['__metadata__', 't3', 't4', 't5']);

    const got = await readModelWeights(dir);
    assert.deepEqual([...got.tensors.keys()], [...input.keys()]);
    for (const [name, t0] of input) {
      assert.deepEqual(got.tensors.get(name)!.shape, t0.shape);
      assert.deepEqual(bits(got.tensors.get(name)!.data), bits(t0.data));
    }
    assert.deepEqual(got.metadata, { format: 'pt' });
    assert.deepEqual(await tempFilesIn(dir), []);
  });

  it('counts stored bytes per dtype when sharding (F16 halves the sizes)', async (t) => {
    const dir = await tempDir(t);
    // F16 sizes: 20, 6, 40, 2, 0, 10 -> [t0 t1] 26 | [t2] 40 | [t3 t4 t5] 12 with 32-byte shards.
    await writeModelWeights(dir, model(), { maxShardBytes: 32, dtype: 'F16' });
    const got = await readModelWeights(dir);
    assert.deepEqual(new Set(got.dtypes.values()), new Set(['F16']));
    assert.equal(JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')).metadata.total_size, 78);
  });

  it('switching layouts removes the other layout only after writing', async (t) => {
    const dir = await tempDir(t);
    await writeModelWeights(dir, model(), { maxShardBytes: 64 });
    await writeModelWeights(dir, model());
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
    await writeModelWeights(dir, model(), { maxShardBytes: 64 });
    assert.deepEqual((await readdir(dir)).sort(), [shard(1, 3), shard(2, 3), shard(3, 3), 'model.safetensors.index.json']);
    await writeModelWeights(dir, model(), { maxShardBytes: 140 }); // [t0 t1 t2] 132 | [t3 t4 t5] 24
    const after = (await readdir(dir)).sort();
    assert.deepEqual(after, [shard(1, 2), shard(2, 2), 'model.safetensors.index.json'], 'stale 3-way shards removed');
    assert.equal((await readModelWeights(dir)).tensors.size, 6);
  });

  it('reports a directory without weights as an InputError', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(readModelWeights(dir), (err: Error) => err instanceof InputError && err.message.includes(dir));
  });

  it('leaves a sharded directory untouched when writeModelWeights is given bad tensors', async (t) => {
    const dir = await tempDir(t);
    await writeModelWeights(dir, [['a', tensor([8])], ['b', tensor([8])]], { maxShardBytes: 40 });
    const before = await snapshot(dir);
    await assert.rejects(writeModelWeights(dir, [['a', tensor([8])], ['b', { shape: [9], data: new Float32Array(8) }]]), InputError);
    assert.deepEqual(await snapshot(dir), before);
  });

  describe('corrupt sharded directories', () => {
    async function sharded(t: TestContext) {
      const dir = await tempDir(t);
      await writeModelWeights(dir, model(), { maxShardBytes: 64 });
      const indexPath = join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(await readFile(indexPath, 'utf8'));
      const saveIndex = (mutate: (ix: any) => void) => { mutate(index); return writeFile(indexPath, JSON.stringify(index)); };
      return { dir, indexPath, saveIndex };
    }

    it('a tensor renamed in the index', async (t) => {
      const { dir, saveIndex } = await sharded(t);
      await saveIndex((ix) => { ix.weight_map['t2.renamed'] = ix.weight_map.t2; delete ix.weight_map.t2; });
      await expectCorrupt(readModelWeights(dir), join(dir, shard(2, 3)), 'tensor "t2"', 'not in the weight_map');
    });
    it('a tensor in the index but not in its shard', async (t) => {
      const { dir, saveIndex } = await sharded(t);
      await saveIndex((ix) => { ix.weight_map.ghost = shard(1, 3); });
      await expectCorrupt(readModelWeights(dir), join(dir, shard(1, 3)), 'tensor "ghost"', 'does not contain it');
    });
    it('a tensor in a shard but not in the index', async (t) => {
      const { dir, saveIndex } = await sharded(t);
      await saveIndex((ix) => { delete ix.weight_map.t1; });
      await expectCorrupt(readModelWeights(dir), join(dir, shard(1, 3)), 'tensor "t1"', 'not in the weight_map');
    });
    it('a tensor in a different shard than the index says', async (t) => {
      const { dir, saveIndex } = await sharded(t);
      await saveIndex((ix) => { ix.weight_map.t1 = shard(3, 3); });
      await expectCorrupt(readModelWeights(dir), join(dir, shard(1, 3)), 'tensor "t1"', `maps it to "${shard(3, 3)}"`);
    });
    it('a missing shard file', async (t) => {
      const { dir, indexPath } = await sharded(t);
      await rm(join(dir, shard(2, 3)));
      await expectCorrupt(readModelWeights(dir), indexPath, shard(2, 3), 'missing');
    });
    it('duplicates across shards', async (t) => {
      const { dir } = await sharded(t);
      await writeSafetensors(join(dir, shard(3, 3)), [['t3', tensor([])], ['t4', tensor([0, 3])], ['t5', tensor([5])], ['t0', tensor([10])]]);
      await expectCorrupt(readModelWeights(dir), join(dir, shard(3, 3)), 'tensor "t0"', `also stored in shard "${shard(1, 3)}"`);
    });
    it('a malformed index', async (t) => {
      const { dir, indexPath } = await sharded(t);
      await writeFile(indexPath, '{"weight_map": {');
      await expectCorrupt(readModelWeights(dir), indexPath, 'not valid JSON');
      await writeFile(indexPath, '{"metadata": {}}');
      await expectCorrupt(readModelWeights(dir), indexPath, '"weight_map"');
    });
    it('a shard path that leaves the directory', async (t) => {
      const { dir, saveIndex, indexPath } = await sharded(t);
      await saveIndex((ix) => { ix.weight_map.t0 = '../model-00001-of-00003.safetensors'; });
      await expectCorrupt(readModelWeights(dir), indexPath, 'tensor "t0"', 'same directory');
    });
    it('a truncated shard names the shard file', async (t) => {
      const { dir } = await sharded(t);
      const p = join(dir, shard(1, 3));
      const bytes = await readFile(p);
      await writeFile(p, bytes.subarray(0, bytes.length - 1));
      await expectCorrupt(readModelWeights(dir), p, 'tensor "t1"', 'truncated');
    });
  });
});
