/**
 * The streaming reader (line-blocks.ts + forEachJsonlLine) judges every line exactly as readRecords,
 * which reads the whole file: same records with the same line numbers, same bad lines with the same
 * reasons (over-long lines counted without their \r\n), for block sizes from smaller than a line to
 * larger than the file, with CRLF, blank lines, an over-long last line and no final newline.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { lineBlocks } from '../../src/data/line-blocks.ts';
import { forEachJsonlLine, oversizeLine, readRecords, type BadRecord, type RawRecord } from '../../src/data/records.ts';
import { Rng } from '../../src/util/rng.ts';
import { tempDir } from '../train/fixtures.ts';

async function streamed(file: string, blockBytes: number, maxRecordBytes: number): Promise<{ records: RawRecord[]; bad: BadRecord[] }> {
  const records: RawRecord[] = [];
  const bad: BadRecord[] = [];
  for await (const b of lineBlocks(file, { blockBytes, maxRecordBytes })) {
    if (b.kind === 'oversize') bad.push(oversizeLine(file, b.line, b.bytes, maxRecordBytes));
    else forEachJsonlLine(file, b.bytes, b.firstLine, maxRecordBytes, (r) => ('reason' in r ? bad.push(r) : records.push(r)));
  }
  return { records, bad };
}

test('streamed lines == readRecords for every block size, line ending and over-long line', async (t) => {
  const dir = await tempDir(t);
  const max = 64;
  for (let seed = 1; seed <= 12; seed++) {
    const rng = new Rng(seed);
    const lines = [...Array(40)].map(() => {
      const k = rng.int(8);
      if (k === 0) return '';
      if (k === 1) return '{"text": "' + 'x'.repeat(40 + rng.int(200)) + '"}';
      if (k === 2) return 'not json';
      return JSON.stringify({ text: 'é'.repeat(rng.int(20)) });
    });
    const eol = seed % 3 === 0 ? '\r\n' : '\n';
    // Odd seeds end without a newline; seed 5's last line is over-long and ends in \r.
    const text = lines.join(eol) + (seed % 2 ? '' : eol) + (seed === 5 ? '\n{"text": "' + 'y'.repeat(300) + '"}\r' : '');
    const file = join(dir, `d${seed}.jsonl`);
    await writeFile(file, text);
    const want = await readRecords(file, max);
    assert.ok(want.bad.some((b) => /exceeds/.test(b.reason)), `seed ${seed} has over-long lines`);
    for (const block of [7, 50, 65, 200, 1 << 20]) assert.deepEqual(await streamed(file, block, max), want, `seed ${seed} block ${block}`);
  }
});
