/**
 * safetensors reader/writer and the f16/bf16 conversions.
 *
 * Independent references used here, none of which goes through src/model/safetensors.ts:
 *  - `buildFile` / `parseRaw` below: a minimal safetensors writer/parser on plain DataView;
 *  - a hand-built byte fixture whose every byte is written out in this file;
 *  - a brute-force nearest-value search over all binary16 / bfloat16 values as the rounding oracle;
 *  - numpy (when `python3 -c "import numpy"` works) reading our files and writing files for us.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointCorruptError, InputError, RingtuneError } from '../../src/errors.ts';
import { bf16ToF32, f16ToF32, f32BitsToBf16Bits, f32ToBf16, f32ToF16 } from '../../src/model/half.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from '../../src/model/safetensors.ts';

// ------------------------------------------------------------------ helpers

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-st-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function tensor(shape: number[], values?: number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: new Float32Array(values ?? Array.from({ length: n }, (_, i) => i * 0.25 - 1)) };
}

/** Independent writer: 8-byte LE length, the header text exactly as given, then the data bytes. */
function buildFile(header: string, data: Uint8Array, declaredLength?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Independent parser: returns the header JSON, its length and the data region. */
function parseRaw(bytes: Uint8Array): { headerLen: number; headerText: string; header: Record<string, any>; data: DataView } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const data = new DataView(bytes.buffer, bytes.byteOffset + 8 + headerLen, bytes.byteLength - 8 - headerLen);
  return { headerLen, headerText, header: JSON.parse(headerText), data };
}

/** Re-encode a file with a mutated header (and optionally other data bytes); no padding. */
function rewrite(bytes: Uint8Array, mutate: (header: Record<string, any>) => void, data?: Uint8Array): Uint8Array {
  const { header, data: view } = parseRaw(bytes);
  mutate(header);
  return buildFile(JSON.stringify(header), data ?? new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function f32FromBits(...u: number[]): Float32Array {
  return new Float32Array(new Uint32Array(u).buffer);
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

// ------------------------------------------------------------------ f16 / bf16

describe('float16 conversions', () => {
  // Hand-worked: value = (-1)^s * 2^(e-15) * (1 + m/1024); subnormal = m * 2^-24.
  const exact: [number, number][] = [
    [1.0, 0x3c00], // e=15, m=0
    [-2.5, 0xc100], // 2.5 = 2^1 * 1.25: e=16 (0x4000) | m=256 (0x100), sign bit
    [65504, 0x7bff], // largest finite: 2^15 * (1 + 1023/1024)
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [0.5, 0x3800],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
  ];

  it('encodes and decodes hand-worked values', () => {
    for (const [value, b] of exact) {
      assert.equal(f32ToF16(value), b, `f32ToF16(${value})`);
      assert.equal(f16ToF32(b), value, `f16ToF32(0x${b.toString(16)})`);
    }
    assert.equal(f32ToF16(-0), 0x8000);
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.equal(f32ToF16(0.1), 0x2e66); // 0.1 ~ 2^-4 * 1.6 -> m = round(0.6*1024 = 614.4) = 614 = 0x266
  });

  it('keeps NaN a NaN both ways', () => {
    const b = f32ToF16(NaN);
    assert.equal(b & 0x7c00, 0x7c00);
    assert.notEqual(b & 0x3ff, 0, 'NaN must not become Inf');
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
    assert.ok(Number.isNaN(f16ToF32(0xfc01)));
  });

  it('rounds to nearest, ties to even', () => {
    const cases: [number, number, string][] = [
      [1 + 2 ** -11, 0x3c00, 'tie between m=0 and m=1 -> even m=0'],
      [1 + 3 * 2 ** -11, 0x3c02, 'tie between m=1 and m=2 -> even m=2'],
      [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above the tie -> up'],
      [65519, 0x7bff, 'below the overflow tie'],
      [65520, 0x7c00, 'tie between 65504 (odd m) and 2^16 -> Inf'],
      [2 ** -25, 0x0000, 'tie between 0 and the smallest subnormal -> 0'],
      [2 ** -25 * (1 + 2 ** -10), 0x0001, 'just above it -> smallest subnormal'],
      [3 * 2 ** -25, 0x0002, 'subnormal tie 1|2 -> 2'],
      [5 * 2 ** -25, 0x0002, 'subnormal tie 2|3 -> 2'],
      [-3 * 2 ** -25, 0x8002, 'sign kept'],
      [1023.5 * 2 ** -24, 0x0400, 'largest-subnormal tie carries into the smallest normal'],
      [2 ** -26, 0x0000, 'below half the smallest subnormal'],
    ];
    for (const [x, want, why] of cases) assert.equal(f32ToF16(x), want, `${x}: ${why}`);
  });

  it('round-trips every non-NaN bit pattern', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = f16ToF32(b);
      if (Number.isNaN(v)) assert.equal(f32ToF16(v) & 0x7c00, 0x7c00);
      else assert.equal(f32ToF16(v), b, `0x${b.toString(16)}`);
    }
  });

  it('agrees with a brute-force nearest-value search on random float32s', () => {
    // Positive finite f16 values increase with their bit pattern: binary search the neighbours.
    const values = Array.from({ length: 0x7c00 }, (_, b) => f16ToF32(b));
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    let seed = 12345;
    for (let i = 0; i < 50_000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const exp = 100 + (seed % 45); // 2^-27 .. 2^17: subnormals, normals and overflow
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      u[0] = (exp << 23) | (seed & 0x7fffff);
      const x = f[0]!;
      let want: number;
      if (x >= 65520) want = 0x7c00;
      else {
        let lo = 0;
        let hi = values.length - 1;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (values[mid]! <= x) lo = mid;
          else hi = mid;
        }
        if (x >= values[hi]!) want = hi;
        else {
          const dLo = x - values[lo]!;
          const dHi = (hi === 0x7bff && x > 65504 ? 65536 : values[hi]!) - x;
          want = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
        }
      }
      assert.equal(f32ToF16(x), want, `x=${x}`);
      assert.equal(f32ToF16(-x), want | 0x8000, `x=${-x}`);
    }
  });
});

describe('bfloat16 conversions', () => {
  it('encodes and decodes hand-worked values', () => {
    // bf16 is the top 16 bits of float32: 1.0 = 0x3f800000, -2.5 = 0xc0200000.
    const exact: [number, number][] = [
      [1.0, 0x3f80],
      [-2.5, 0xc020],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [2 ** -133, 0x0001], // smallest subnormal: 2^-126 * 2^-7
      [(2 - 2 ** -7) * 2 ** 127, 0x7f7f], // largest finite
    ];
    for (const [value, b] of exact) {
      assert.equal(f32ToBf16(value), b, `f32ToBf16(${value})`);
      assert.equal(bf16ToF32(b), value, `bf16ToF32(0x${b.toString(16)})`);
    }
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
  });

  it('rounds to nearest, ties to even, overflowing to Inf', () => {
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80, 'tie m=0|1 -> 0');
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82, 'tie m=1|2 -> 2');
    assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81, 'above the tie -> up');
    assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80, 'float32 max rounds up to Inf');
  });

  it('preserves NaN, including payloads that live only in the dropped bits', () => {
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
    for (const nan of [0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff]) {
      const b = f32BitsToBf16Bits(nan);
      assert.equal(b & 0x7f80, 0x7f80);
      assert.notEqual(b & 0x7f, 0, `0x${nan.toString(16)} became Inf`);
      assert.equal(b & 0x8000, (nan >>> 16) & 0x8000, 'sign kept');
    }
  });

  it('round-trips every bit pattern and matches a nearest-neighbour oracle', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = bf16ToF32(b);
      if (!Number.isNaN(v)) assert.equal(f32ToBf16(v), b);
    }
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    let seed = 99;
    for (let i = 0; i < 50_000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      u[0] = seed & 0x7f7fffff; // finite, positive
      const x = f[0]!;
      const lo = u[0]! >>> 16; // truncation toward zero; hi is the next value up
      const dLo = x - bf16ToF32(lo);
      const dHi = (lo === 0x7f7f ? 2 ** 128 : bf16ToF32(lo + 1)) - x;
      const want = dLo < dHi ? lo : dHi < dLo ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
      assert.equal(f32ToBf16(x), want, `x=${x}`);
    }
  });
});

// ------------------------------------------------------------------ single files

describe('safetensors files', () => {
  it('decodes a hand-built file: F16, unaligned F32, BF16 scalar, header out of offset order', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'hand.safetensors');
    // Header not padded (data starts at an odd file offset) and listing tensors out of offset order.
    const header =
      '{"c":{"dtype":"BF16","shape":[],"data_offsets":[14,16]},' +
      '"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},' +
      '"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F32","shape":[2,1],"data_offsets":[6,14]}}';
    // prettier-ignore
    const data = new Uint8Array([
      0x00, 0x3c, 0xff, 0x7b, 0x01, 0x00, // h: F16 1.0, 65504, 2^-24
      0x00, 0x00, 0x20, 0xc0, 0x00, 0x00, 0x80, 0x3f, // w: F32 -2.5, 1.0 at buffer offset 6 (not 4-aligned)
      0x20, 0xc0, // c: BF16 -2.5
    ]);
    await writeFile(path, buildFile(header, data));
    const got = await readSafetensors(path);
    assert.deepEqual([...got.tensors.keys()], ['h', 'w', 'c'], 'order of data_offsets');
    assert.deepEqual(Object.fromEntries(got.dtypes), { h: 'F16', w: 'F32', c: 'BF16' });
    assert.deepEqual(got.metadata, { format: 'pt' });
    assert.deepEqual(got.tensors.get('h'), { shape: [3], data: new Float32Array([1, 65504, 2 ** -24]) });
    assert.deepEqual(got.tensors.get('w'), { shape: [2, 1], data: new Float32Array([-2.5, 1]) });
    assert.deepEqual(got.tensors.get('c'), { shape: [], data: new Float32Array([-2.5]) });
  });

  it('round-trips F32 bit for bit, scalars and zero-size tensors included', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'rt.safetensors');
    const specials = f32FromBits(0x7fc00001, 0xffc12345, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x7f7fffff);
    const input = new Map<string, HostTensor>([
      ['scalar', tensor([], [3.5])],
      ['empty', tensor([0, 3])],
      ['vec', { shape: [7], data: specials }],
      ['cube', tensor([2, 3, 4])],
      ['10', tensor([1, 1, 1, 5])], // integer-like name: must not be hoisted in the header
      ['empty2', tensor([3, 0])],
    ]);
    await writeSafetensors(path, input, { metadata: { step: '7' } });

    const raw = parseRaw(await readFile(path));
    assert.equal((8 + raw.headerLen) % 8, 0, 'data starts 8-byte aligned');
    assert.match(raw.headerText, / *$/);
    assert.ok(raw.headerText.indexOf('"scalar"') < raw.headerText.indexOf('"10"'), 'header keeps insertion order');
    assert.deepEqual(raw.header.__metadata__, { step: '7' });
    let offset = 0;
    for (const [name, t0] of input) {
      const entry = raw.header[name];
      assert.deepEqual(entry, { dtype: 'F32', shape: t0.shape, data_offsets: [offset, offset + t0.data.length * 4] });
      for (let i = 0; i < t0.data.length; i++) assert.equal(raw.data.getUint32(offset + 4 * i, true), bits(t0.data)[i]);
      offset += t0.data.length * 4;
    }
    assert.equal(raw.data.byteLength, offset);

    const got = await readSafetensors(path);
    assert.deepEqual([...got.tensors.keys()], [...input.keys()]);
    for (const [name, t0] of input) {
      assert.deepEqual(got.tensors.get(name)!.shape, t0.shape);
      assert.deepEqual(bits(got.tensors.get(name)!.data), bits(t0.data), name);
      assert.equal(got.dtypes.get(name), 'F32');
    }
    assert.deepEqual(got.metadata, { step: '7' });
    assert.deepEqual(await tempFilesIn(dir), []);
  });

  it('round-trips F16 and BF16: exact values exactly, others to the rounded value', async (t) => {
    const dir = await tempDir(t);
    const exactValues = [1, -2.5, 65504, 2 ** -24, 0.5, -0, Infinity];
    const rough = Array.from({ length: 50 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    for (const dtype of ['F16', 'BF16'] as const) {
      const path = join(dir, `${dtype}.safetensors`);
      const encode = dtype === 'F16' ? f32ToF16 : f32ToBf16;
      const decode = dtype === 'F16' ? f16ToF32 : bf16ToF32;
      await writeSafetensors(path, [['exact', tensor([7], exactValues)], ['rough', tensor([5, 10], rough)], ['s', tensor([], [-2.5])]], { dtype });
      const raw = parseRaw(await readFile(path));
      assert.deepEqual(raw.header.rough, { dtype, shape: [5, 10], data_offsets: [14, 114] });
      rough.forEach((x, i) => assert.equal(raw.data.getUint16(14 + 2 * i, true), encode(x)));
      assert.equal(raw.data.getUint16(114, true), dtype === 'F16' ? 0xc100 : 0xc020);

      const got = await readSafetensors(path);
      assert.equal(got.dtypes.get('rough'), dtype);
      const want = dtype === 'F16' ? exactValues : exactValues.map((x) => Math.fround(decode(encode(x))));
      assert.deepEqual(Array.from(got.tensors.get('exact')!.data), want);
      assert.deepEqual(Array.from(got.tensors.get('rough')!.data), rough.map((x) => decode(encode(x))));
      assert.deepEqual(Array.from(got.tensors.get('s')!.data), [-2.5]);
    }
  });

  it('converts F16/BF16 tensors longer than one 2^20-element conversion chunk', async (t) => {
    const dir = await tempDir(t);
    const n = (1 << 20) * 2 + 3;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((i % 4099) - 2049) * 0.37;
    for (const dtype of ['F16', 'BF16'] as const) {
      const path = join(dir, `${dtype}.safetensors`);
      await writeSafetensors(path, [['head', tensor([1], [0.5])], ['big', { shape: [n], data }]], { dtype });
      const raw = parseRaw(await readFile(path));
      const got = (await readSafetensors(path)).tensors.get('big')!.data;
      const [encode, decode] = dtype === 'F16' ? [f32ToF16, f16ToF32] : [f32ToBf16, bf16ToF32];
      for (const i of [0, (1 << 20) - 1, 1 << 20, (1 << 21) + 1, n - 1]) {
        assert.equal(raw.data.getUint16(2 + 2 * i, true), encode(data[i]!), `stored ${dtype} [${i}]`);
        assert.equal(got[i], decode(encode(data[i]!)), `read ${dtype} [${i}]`);
      }
      let mismatches = 0;
      for (let i = 0; i < n; i++) if (got[i] !== decode(raw.data.getUint16(2 + 2 * i, true))) mismatches++;
      assert.equal(mismatches, 0);
    }
  });

  it('keeps NaN payload bits NaN when writing BF16', async (t) => {
    const path = join(await tempDir(t), 'nan.safetensors');
    await writeSafetensors(path, [['n', { shape: [2], data: f32FromBits(0x7f800001, 0xff800001) }]], { dtype: 'BF16' });
    const raw = parseRaw(await readFile(path));
    for (const i of [0, 1]) {
      const b = raw.data.getUint16(2 * i, true);
      assert.ok((b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0, `0x${b.toString(16)} is not NaN`);
    }
  });

  it('writes no __metadata__ when none is given and reads {} back; empty files work', async (t) => {
    const dir = await tempDir(t);
    await writeSafetensors(join(dir, 'a.safetensors'), new Map([['x', tensor([2])]]));
    assert.equal(parseRaw(await readFile(join(dir, 'a.safetensors'))).header.__metadata__, undefined);
    assert.deepEqual((await readSafetensors(join(dir, 'a.safetensors'))).metadata, {});
    await writeSafetensors(join(dir, 'e.safetensors'), []);
    assert.equal((await readSafetensors(join(dir, 'e.safetensors'))).tensors.size, 0);
  });

  it('reports integer tensors as skipped (not loaded) so the model key table can judge them', async (t) => {
    const path = join(await tempDir(t), 'ids.safetensors');
    const header = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"position_ids":{"dtype":"I64","shape":[1,2],"data_offsets":[4,20]}}';
    await writeFile(path, buildFile(header, new Uint8Array(20)));
    const got = await readSafetensors(path);
    assert.deepEqual([...got.tensors.keys()], ['w']);
    assert.deepEqual([...got.skipped], [['position_ids', 'I64']]);
  });

  it('reports a missing file as an InputError', async (t) => {
    const path = join(await tempDir(t), 'nope.safetensors');
    await assert.rejects(readSafetensors(path), (err: Error) => err instanceof InputError && err.message.includes(path));
  });

  it('rejects bad input to the writer with one InputError listing every problem', async (t) => {
    const path = join(await tempDir(t), 'bad.safetensors');
    const bad: [string, HostTensor][] = [
      ['a', { shape: [2, 2], data: new Float32Array(3) }],
      ['a', tensor([1])],
      ['__metadata__', tensor([1])],
      ['neg', { shape: [-1], data: new Float32Array(0) }],
    ];
    await assert.rejects(writeSafetensors(path, bad), (err: Error) => {
      assert.ok(err instanceof InputError);
      for (const s of ['holds 4 elements but data has 3', '"a" appears twice', '__metadata__', '"neg"']) assert.ok(err.message.includes(s), err.message);
      return true;
    });
    await assert.rejects(writeSafetensors(path, [], { dtype: 'I64' as never }), InputError);
    await assert.rejects(writeSafetensors(path, [], { metadata: { n: 3 as never } }), InputError);
  });
});

// ------------------------------------------------------------------ corruption

describe('corrupt files', () => {
  // A valid base file: a = F32 [2,3] at [0,24), b = F32 [4] at [24,40).
  async function base(t: TestContext): Promise<{ dir: string; path: string; bytes: Uint8Array }> {
    const dir = await tempDir(t);
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, [['a', tensor([2, 3])], ['b', tensor([4])]]);
    return { dir, path, bytes: new Uint8Array(await readFile(path)) };
  }
  async function corruptWith(t: TestContext, make: (bytes: Uint8Array) => Uint8Array, ...fragments: string[]): Promise<void> {
    const { path, bytes } = await base(t);
    await writeFile(path, make(bytes));
    await expectCorrupt(readSafetensors(path), path, ...fragments);
  }

  it('truncated data names the last tensor', (t) => corruptWith(t, (b) => b.subarray(0, b.length - 4), 'tensor "b"', 'truncated'));
  it('truncated inside the header', (t) => corruptWith(t, (b) => b.subarray(0, 20), 'header length', 'past the end of the file'));
  it('shorter than 8 bytes', (t) => corruptWith(t, (b) => b.subarray(0, 5), 'too short'));
  it('header length past the end of the file', (t) =>
    corruptWith(t, (b) => { const c = b.slice(); new DataView(c.buffer).setBigUint64(0, BigInt(c.length), true); return c; }, 'past the end of the file'));
  it('header length 2^63', (t) =>
    corruptWith(t, (b) => { const c = b.slice(); new DataView(c.buffer).setBigUint64(0, 2n ** 63n, true); return c; }, '9223372036854775808', '100 MB'));
  it('wrong shape for the bytes', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.b.shape = [5]; }), 'tensor "b"', 'needs 20 bytes', 'hold 16', 'wrong shape or dtype'));
  it('wrong dtype for the bytes', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.a.dtype = 'F16'; }), 'tensor "a"', 'F16 needs 12 bytes', 'wrong shape or dtype'));
  it('overlapping offsets', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.b.data_offsets = [16, 32]; }), 'tensor "b"', 'overlap tensor "a"'));
  it('a gap between tensors', (t) =>
    corruptWith(t, (b) => rewrite(b, (h) => { h.b.data_offsets = [28, 44]; }, new Uint8Array(44)), 'tensor "b"', 'gap of 4 bytes'));
  it('trailing bytes after the last tensor', (t) =>
    corruptWith(t, (b) => rewrite(b, () => undefined, new Uint8Array(48)), '8 bytes after the last tensor'));
  it('header that is not JSON', (t) => corruptWith(t, () => buildFile('{"a": {', new Uint8Array(0)), 'not valid JSON'));
  it('header that is not an object', (t) => corruptWith(t, () => buildFile('[1, 2]', new Uint8Array(0)), 'not a JSON object'));
  it('header that is not UTF-8', (t) => corruptWith(t, () => { const f = buildFile('{"a":1}', new Uint8Array(0)); f[10] = 0xff; return f; }, 'UTF-8'));
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    it(`entry without ${field}`, (t) => corruptWith(t, (b) => rewrite(b, (h) => { delete h.a[field]; }), 'tensor "a"', `"${field}"`));
  }
  it('unknown dtype', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.a.dtype = 'F31'; }), 'tensor "a"', 'unknown dtype "F31"'));
  it('negative dimension', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.a.shape = [-2, -3]; }), 'tensor "a"', 'negative or non-integer'));
  it('non-integer dimension', (t) => corruptWith(t, (b) => rewrite(b, (h) => { h.a.shape = [4, 1.5]; }), 'tensor "a"', 'negative or non-integer'));
  it('metadata value that is not a string', (t) =>
    corruptWith(t, (b) => rewrite(b, (h) => { h.__metadata__ = { epoch: 3 }; }), '__metadata__', '"epoch"'));
  it('a hostile header claiming 4 GB is refused before allocating', (t) =>
    corruptWith(t, (b) => rewrite(b, (h) => { h.b = { dtype: 'F32', shape: [1e9], data_offsets: [24, 24 + 4e9] }; }), 'tensor "b"', 'run past the end'));
  it('a shape whose size overflows', (t) =>
    corruptWith(t, (b) => rewrite(b, (h) => { h.b.shape = [2 ** 30, 2 ** 30, 2 ** 30]; }), 'tensor "b"', 'too large'));
});

// ------------------------------------------------------------------ atomic writes

describe('atomic writes', () => {
  it('leaves an existing file byte-identical when the tensors are bad', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, [['a', tensor([3])]]);
    const before = await readFile(path);
    await assert.rejects(writeSafetensors(path, [['a', { shape: [2, 2], data: new Float32Array(5) }]]), InputError);
    assert.deepEqual(await readFile(path), before);
    assert.deepEqual(await readdir(dir), ['model.safetensors']);
  });

  it('removes the temp file when the rename fails and leaves the target alone', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'occupied');
    await mkdir(target); // rename(file, non-empty dir) fails after the temp file is fully written
    await writeFile(join(target, 'keep'), 'x');
    await assert.rejects(writeSafetensors(target, [['a', tensor([1000])]]), (err: Error) => err instanceof RingtuneError && err.message.includes(target));
    assert.deepEqual(await readdir(dir), ['occupied']);
    assert.deepEqual(await readdir(target), ['keep']);
  });
});

// ------------------------------------------------------------------ numpy cross-check

const NUMPY_SCRIPT = String.raw`
import json, struct, sys
import numpy as np

def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop('__metadata__', None)
    kinds = {'F32': '<f4', 'F16': '<f2'}
    return {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=kinds[v['dtype']]).reshape(v['shape'])
            for k, v in h.items()}

if sys.argv[1] == 'check':
    f32, f16 = read(sys.argv[2]), read(sys.argv[3])
    for k, src in f32.items():
        want = src.astype(np.float16)
        got = f16[k]
        assert got.shape == want.shape, (k, got.shape, want.shape)
        same = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), (k, np.argwhere(~same)[:5].tolist(), src[~same][:5].tolist())
    print('ok')
else:
    rng = np.random.default_rng(7)
    t = {'w': rng.standard_normal((3, 5)).astype('<f4'), 'h': (rng.standard_normal(7) * 1000).astype('<f2'),
         'scalar': np.array(3.25, '<f4'), 'empty': np.zeros((0, 4), '<f4')}
    header, blobs, off = {'__metadata__': {'writer': 'numpy'}}, [], 0
    for k in sorted(t):
        raw = t[k].tobytes()
        header[k] = {'dtype': 'F32' if t[k].dtype == np.float32 else 'F16', 'shape': list(t[k].shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header).encode()
    open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + b''.join(blobs))
    print(json.dumps({k: {'shape': list(v.shape), 'bits': v.astype('<f4').ravel().view('<u4').tolist()} for k, v in t.items()}))
`;

const numpyMissing = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status !== 0;
const numpySkip = numpyMissing ? 'python3 cannot import numpy (apt-get install python3-numpy)' : false;

describe('numpy cross-check', () => {
  it('numpy reads our F16 file and agrees with its own float32 -> float16 rounding', { skip: numpySkip }, async (t) => {
    const dir = await tempDir(t);
    let seed = 3;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed);
    const u = new Uint32Array(20_000).map(() => ((rand() % 46) + 98) << 23 | (rand() & 0x7fffff) | (rand() & 1) << 31);
    const ties = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 65519.99, 2 ** -25, 3 * 2 ** -25, 1023.5 * 2 ** -24, -0, Infinity, NaN];
    const input = new Map<string, HostTensor>([
      ['random', { shape: [100, 200], data: new Float32Array(u.buffer) }],
      ['ties', tensor([ties.length], ties)],
      ['scalar', tensor([], [-2.5])],
    ]);
    await writeSafetensors(join(dir, 'a.safetensors'), input);
    await writeSafetensors(join(dir, 'b.safetensors'), input, { dtype: 'F16' });
    const r = spawnSync('python3', ['-c', NUMPY_SCRIPT, 'check', join(dir, 'a.safetensors'), join(dir, 'b.safetensors')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ok');
  });

  it('we read a file numpy wrote (name-ordered, unpadded header) to the same float32 values', { skip: numpySkip }, async (t) => {
    const path = join(await tempDir(t), 'np.safetensors');
    const r = spawnSync('python3', ['-c', NUMPY_SCRIPT, 'write', path], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const want: Record<string, { shape: number[]; bits: number[] }> = JSON.parse(r.stdout);
    const got = await readSafetensors(path);
    assert.deepEqual([...got.tensors.keys()], ['empty', 'h', 'scalar', 'w']);
    assert.equal(got.dtypes.get('h'), 'F16');
    assert.deepEqual(got.metadata, { writer: 'numpy' });
    for (const [name, { shape, bits: b }] of Object.entries(want)) {
      assert.deepEqual(got.tensors.get(name)!.shape, shape);
      assert.deepEqual(bits(got.tensors.get(name)!.data), b, name);
    }
  });
});
