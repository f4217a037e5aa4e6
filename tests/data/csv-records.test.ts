/**
 * records.ts csvRecords: CSV streamed through csv-parse's stream parser in 64 KiB reads. Checked
 * against what the file was written to hold (values and the line each record starts on, counted
 * while writing it), across read boundaries that cut quoted newlines, \r\n pairs and multi-byte
 * characters; errors name the file, the bad record's first line and the field.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { csvRecords, readRecords, type RawRecord } from '../../src/data/records.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtune-csv-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A 600 KiB CSV (ten reads) whose records hold quoted commas, quotes, newlines (\n and \r\n) and 2-4 byte characters; blank lines between some. */
function generated(eol: '\n' | '\r\n'): { text: string; want: Array<{ line: number; value: Record<string, string> }> } {
  const parts = ['\ufefftext,label', eol];
  const want: Array<{ line: number; value: Record<string, string> }> = [];
  let line = 2;
  const pieces = ['plain', 'comma, inside', 'a "quoted" word', `two${eol}lines`, `three${eol}${eol}lines`, 'é', '€uro', '𝄞 clef', 'x'.repeat(300)];
  let bytes = 0;
  for (let i = 0; bytes < 600 << 10; i++) {
    const text = `${pieces[i % pieces.length]} ${i} ${pieces[(i * 7) % pieces.length]}`;
    const label = `l${i % 5}`;
    const quoted = /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    parts.push(`${quoted},${label}`, eol);
    bytes += Buffer.byteLength(quoted) + label.length + 1 + eol.length;
    want.push({ line, value: { text, label } });
    line += text.split('\n').length;
    if (i % 11 === 3) {
      parts.push(eol); // a blank line: skipped, and counted
      line++;
    }
  }
  return { text: parts.join(''), want };
}

test('streamed CSV: values and first lines as written, across read boundaries, for \\n and \\r\\n files', async (t) => {
  const dir = await tempDir(t);
  for (const eol of ['\n', '\r\n'] as const) {
    const { text, want } = generated(eol);
    assert.ok(Buffer.byteLength(text) > 600 << 10, 'spans many reads');
    const file = join(dir, `d${eol.length}.csv`);
    await writeFile(file, text);
    const hash = createHash('sha256');
    let bytesSeen = 0;
    const got: RawRecord[] = [];
    for await (const r of csvRecords(file, { maxRecordBytes: 1 << 16, hash, onBytes: (n) => { bytesSeen = n; } })) got.push(r);
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      if (got[i].line !== want[i].line || got[i].value.text !== want[i].value.text || got[i].value.label !== want[i].value.label) {
        assert.fail(`record ${i} (${JSON.stringify(eol)}): got line ${got[i].line} ${JSON.stringify(got[i].value)}, want ${JSON.stringify(want[i])}`);
      }
    }
    const bytes = await readFile(file);
    assert.equal(bytesSeen, bytes.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual((await readRecords(file, 1 << 16)).records, got, 'readRecords collects the same stream');
  }
});

test('streamed CSV errors name file, the bad record\'s first line and the field; no stack from csv-parse', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['unclosed.csv', 'text,label\na,b\r\n"two\r\nlines",c\r\n"never closed,d\n', /unclosed\.csv:5: field "text": malformed CSV \(Quote Not Closed/],
    ['columns.csv', 'text,label\na,b\n\n"x\ny",c\nc,d,e\n', /columns\.csv:6: malformed CSV \(Invalid Record Length: expect 2, got 3\)/],
    ['quote.csv', 'text,label\na,b\nc"x,d\n', /quote\.csv:3: field "text": malformed CSV \(Invalid Opening Quote/],
    ['big.csv', `text,label\na,b\n"${'x'.repeat(200)}",c\n`, /big\.csv:3: field "text": malformed CSV \(Max Record Size/],
    // The bad byte sits past the first reads, on line 30003.
    ['latin1.csv', Buffer.concat([Buffer.from('text,label\n' + 'é'.repeat(50) + ',a\n'.repeat(1)), Buffer.from(`${'y'.repeat(40)},b\n`.repeat(30_000)), Buffer.from([0x63, 0xe9, 0x2c, 0x61, 0x0a])]), /latin1\.csv:30003: not valid UTF-8/],
  ];
  for (const [name, body, want] of cases) {
    const file = join(dir, name);
    await writeFile(file, body);
    await assert.rejects(async () => { for await (const _ of csvRecords(file, { maxRecordBytes: 100 })) { /* drain */ } }, (err: Error) => {
      assert.equal(err.name, 'DataError', `${name}: ${err.stack}`);
      assert.match(err.message, want);
      return true;
    }, name);
  }
  await assert.rejects(async () => { for await (const _ of csvRecords(join(dir, 'missing.csv'), { maxRecordBytes: 100 })) { /* drain */ } }, /missing\.csv: cannot read the dataset file/);
});

test('a consumer that stops early leaves nothing running (the file stream is closed)', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'd.csv');
  await writeFile(file, 'text\n' + 'row\n'.repeat(500_000));
  let n = 0;
  const t0 = performance.now();
  for await (const _ of csvRecords(file, { maxRecordBytes: 100 })) if (++n === 3) break;
  assert.equal(n, 3);
  // One 64 KiB read parsed, not the 2 MB file (the whole file takes several seconds here).
  assert.ok(performance.now() - t0 < 5000, `${performance.now() - t0} ms`);
});
