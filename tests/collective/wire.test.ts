// The hand framing in wire.ts against protobufjs reading ring.proto: same bytes both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16, fp32 } from '../../src/collective/codecs.ts';
import { RingChunkType } from '../../src/collective/ring-protocol.ts';
import { ChunkEncoder, decodeChunk } from '../../src/collective/wire.ts';

const cases = [
  { step: 0, round: 0, chunk: 0, part: 0, rank: 0, abort: false, lostRank: 0, reason: '', values: [] as number[], codec: fp32 },
  { step: 7, round: 3, chunk: 2, part: 11, rank: 5, abort: false, lostRank: 0, reason: '', values: [1.5, -2, 3e-8], codec: fp32 },
  { step: 2 ** 40 + 3, round: 1, chunk: 1, part: 0, rank: 1, abort: false, lostRank: 0, reason: '', values: [1, 2, 3, 4, 5], codec: bf16 },
  { step: 9, round: 0, chunk: 0, part: 0, rank: 2, abort: true, lostRank: 3, reason: 'PeerLostError: rank 3 ünïcode', values: [], codec: null },
];

/** Length of the pad field in an encoded RingChunk (found by decoding with protobufjs). */
function padLength(bytes: Uint8Array): number {
  return (RingChunkType.decode(bytes) as unknown as { pad: Uint8Array }).pad.length;
}

function isDefault(v: unknown): boolean {
  return v === 0 || v === false || v === '' || (v instanceof Uint8Array && v.length === 0);
}

test('ChunkEncoder writes exactly the bytes protobufjs writes for the same RingChunk', () => {
  const enc = new ChunkEncoder('job-ä1');
  for (const c of cases) {
    for (const offset of [0, 1, 2, 3]) {
      const out = new Uint8Array(enc.bufferBytes(16) + 8).subarray(offset);
      const values = Float32Array.from(c.values);
      const fields = { step: c.step, round: c.round, chunk: c.chunk, part: c.part, rank: c.rank, codec: c.codec?.wireId ?? 0, elements: values.length, abort: c.abort, lostRank: c.lostRank, reason: c.reason };
      const mine = enc.encode(out, fields, c.codec ? values : null, c.codec);
      const payload = new Uint8Array(values.length * (c.codec?.bytesPerElement ?? 0));
      c.codec?.encode(values, payload);
      // pad (field 14) is whatever the encoder chose; read it back from our bytes to build the reference.
      const pad = payload.length > 0 ? new Uint8Array(padLength(mine)) : new Uint8Array(0);
      // Canonical proto3 omits fields equal to their default (as protoc-generated C++/Go code does);
      // protobufjs writes whatever properties are set, so give it only the non-default ones.
      const nonDefault = Object.fromEntries(Object.entries({ jobId: 'job-ä1', ...fields, pad, payload }).filter(([, v]) => !isDefault(v)));
      const theirs = RingChunkType.encode(RingChunkType.fromObject(nonDefault)).finish();
      assert.deepEqual(Buffer.from(mine), Buffer.from(theirs), `step ${c.step} at offset ${offset}`);
      if (payload.length > 0) {
        assert.equal((mine.byteOffset + mine.length - payload.length) % 4, 0, 'payload is 4-byte aligned in our buffer');
        assert.equal((5 + mine.length - payload.length) % 4, 0, 'and after the 5-byte gRPC frame prefix');
      }
      // And our decoder reads protobufjs's bytes back.
      const back = decodeChunk(theirs);
      assert.deepEqual({ ...back, payload: Buffer.from(back.payload) }, { jobId: 'job-ä1', ...fields, payload: Buffer.from(payload) });
      // protobufjs with every field set explicitly (defaults written out) decodes the same.
      const verbose = RingChunkType.encode(RingChunkType.fromObject({ jobId: 'job-ä1', ...fields, pad, payload })).finish();
      assert.deepEqual({ ...decodeChunk(verbose), payload: Buffer.from(decodeChunk(verbose).payload) }, { ...back, payload: Buffer.from(back.payload) });
    }
  }
});

test('decodeChunk skips unknown fields (forward compatibility)', () => {
  const known = RingChunkType.encode(RingChunkType.fromObject({ jobId: 'j', step: 4, rank: 1 })).finish();
  // field 13 (varint 300) and field 14 (length-delimited "xy") are not in ring.proto today
  const extra = Uint8Array.from([0x68, 0xac, 0x02, 0x72, 0x02, 0x78, 0x79]);
  const m = decodeChunk(Uint8Array.from([...known, ...extra]));
  assert.equal(m.jobId, 'j');
  assert.equal(m.step, 4);
  assert.equal(m.rank, 1);
});
