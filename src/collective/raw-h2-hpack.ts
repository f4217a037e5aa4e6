/**
 * HPACK (RFC 7541) for the raw-h2 transport: a full decoder (static + dynamic table, Huffman strings)
 * and an encoder that writes literals without indexing (no Huffman, no dynamic table), which every
 * decoder must accept (RFC 7541 6.2.2) and which keeps the peer's table untouched.
 *
 * Why hand-written, not a library: the one widely used HPACK package on npm, hpack.js 2.1.6
 * (indutny), has had no release in years, is built on readable-stream@2 object streams (a stream per
 * header block), and pulls four dependencies; `hpack` 1.0.0 is a one-release package. A gRPC call
 * carries a handful of headers, so a plain decoder (~200 lines, checked against every example of
 * RFC 7541 Appendix C in tests/collective/raw-h2-hpack.test.ts and against node:http2 / grpc-js in
 * the interop tests) costs less than either. The Huffman table below is RFC 7541 Appendix B as data
 * (generated from python-hpack 4.2.0's huffman_constants.py; the Appendix C.4/C.6 tests cover it).
 */

/** RFC 7541 Appendix A: index 1..61. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** RFC 7541 Appendix B: (code, bit length) for symbols 0..256 (256 = EOS). */
// prettier-ignore
const HUFFMAN: readonly number[] = [
  0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28, 0xfffffe4, 28, 0xfffffe5, 28, 0xfffffe6, 28, 0xfffffe7, 28,
  0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28, 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28,
  0xfffffed, 28, 0xfffffee, 28, 0xfffffef, 28, 0xffffff0, 28, 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28,
  0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28, 0xffffff8, 28, 0xffffff9, 28, 0xffffffa, 28, 0xffffffb, 28,
  0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12, 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11,
  0x3fa, 10, 0x3fb, 10, 0xf9, 8, 0x7fb, 11, 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6,
  0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6, 0x1a, 6, 0x1b, 6, 0x1c, 6, 0x1d, 6,
  0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8, 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10,
  0x1ffa, 13, 0x21, 6, 0x5d, 7, 0x5e, 7, 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7,
  0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7, 0x67, 7, 0x68, 7, 0x69, 7, 0x6a, 7,
  0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7, 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7,
  0xfc, 8, 0x73, 7, 0xfd, 8, 0x1ffb, 13, 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6,
  0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5, 0x24, 6, 0x5, 5, 0x25, 6, 0x26, 6,
  0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7, 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5,
  0x2b, 6, 0x76, 7, 0x2c, 6, 0x8, 5, 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7,
  0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15, 0x7fc, 11, 0x3ffd, 14, 0x1ffd, 13, 0xffffffc, 28,
  0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20, 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23,
  0x3fffd6, 22, 0x7fffda, 23, 0x7fffdb, 23, 0x7fffdc, 23, 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23,
  0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23, 0xffffee, 24, 0x7fffe1, 23, 0x7fffe2, 23, 0x7fffe3, 23,
  0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23, 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24,
  0x3fffda, 22, 0x1fffdd, 21, 0xfffe9, 20, 0x3fffdb, 22, 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21,
  0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24, 0x1fffdf, 21, 0x3fffdf, 22, 0x7fffeb, 23, 0x7fffec, 23,
  0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21, 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23,
  0xfffea, 20, 0x3fffe2, 22, 0x3fffe3, 22, 0x3fffe4, 22, 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23,
  0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19, 0x3fffe7, 22, 0x7ffff2, 23, 0x3fffe8, 22, 0x1ffffec, 25,
  0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27, 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25,
  0x7fff2, 19, 0x1fffe3, 21, 0x3ffffe6, 26, 0x7ffffe0, 27, 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24,
  0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26, 0xffffffd, 28, 0x7ffffe3, 27, 0x7ffffe4, 27, 0x7ffffe5, 27,
  0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21, 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23,
  0x3fffea, 22, 0x3fffeb, 22, 0x1ffffee, 25, 0x1ffffef, 25, 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23,
  0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26, 0x7ffffe7, 27, 0x7ffffe8, 27, 0x7ffffe9, 27, 0x7ffffea, 27,
  0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27, 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26,
  0x3fffffff, 30,
];

/** Huffman decoding tree: node k has children tree[2k] (bit 0) and tree[2k+1] (bit 1); a leaf is -(symbol + 1). */
const TREE: Int32Array = (() => {
  const t = new Int32Array(2 * 600);
  let nodes = 1;
  for (let sym = 0; sym <= 256; sym++) {
    const code = HUFFMAN[2 * sym]!;
    const len = HUFFMAN[2 * sym + 1]!;
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const slot = 2 * node + (Math.floor(code / 2 ** b) & 1);
      if (b === 0) t[slot] = -(sym + 1);
      else node = t[slot]! > 0 ? t[slot]! : (t[slot] = nodes++);
    }
  }
  return t;
})();

/** A header block that breaks RFC 7541 (a COMPRESSION_ERROR in HTTP/2 terms). */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}

const utf8 = new TextDecoder();

function huffmanDecode(b: Uint8Array): string {
  const out: number[] = [];
  let node = 0;
  let depth = 0; // bits since the last symbol, all of them ones so far if `ones`
  let ones = true;
  for (let i = 0; i < b.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (b[i]! >> bit) & 1;
      const next = TREE[2 * node + one]!;
      depth++;
      ones &&= one === 1;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError('EOS symbol inside a Huffman string');
        out.push(sym);
        node = 0;
        depth = 0;
        ones = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else node = next;
    }
  }
  // Padding: the most significant bits of EOS (all ones), fewer than 8 of them (RFC 7541 5.2).
  if (depth > 7 || !ones) throw new HpackError('invalid Huffman padding');
  return utf8.decode(Uint8Array.from(out));
}

export type HeaderList = [name: string, value: string][];

/** Per-connection HPACK decoder (its dynamic table lives as long as the connection). */
export class HpackDecoder {
  private table: [string, string][] = []; // newest first
  private size = 0;
  private limit: number;

  /** `maxTableSize`: our SETTINGS_HEADER_TABLE_SIZE (the peer may not use more). */
  constructor(private readonly maxTableSize = 4096) {
    this.limit = maxTableSize;
  }

  decode(block: Uint8Array): HeaderList {
    const out: HeaderList = [];
    let pos = 0;
    const int = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let v = block[pos++]! & mask;
      if (v < mask) return v;
      let m = 1;
      for (;;) {
        if (pos >= block.length) throw new HpackError('truncated integer');
        const b = block[pos++]!;
        v += (b & 127) * m;
        m *= 128;
        if (b < 128) return v;
        if (m > 2 ** 28) throw new HpackError('integer too large');
      }
    };
    const str = (): string => {
      if (pos >= block.length) throw new HpackError('truncated string');
      const huffman = (block[pos]! & 0x80) !== 0;
      const len = int(7);
      if (pos + len > block.length) throw new HpackError('truncated string');
      const bytes = block.subarray(pos, pos + len);
      pos += len;
      return huffman ? huffmanDecode(bytes) : utf8.decode(bytes);
    };
    while (pos < block.length) {
      const b = block[pos]!;
      if (b & 0x80) {
        out.push(this.entry(int(7))); // indexed
      } else if (b & 0x40) {
        const idx = int(6); // literal with incremental indexing
        const name = idx ? this.entry(idx)[0] : str();
        const h: [string, string] = [name, str()];
        out.push(h);
        this.insert(h);
      } else if (b & 0x20) {
        const size = int(5); // dynamic table size update
        if (size > this.maxTableSize) throw new HpackError(`table size ${size} above our limit ${this.maxTableSize}`);
        this.limit = size;
        this.evict(0);
      } else {
        const idx = int(4); // literal without indexing (0000) / never indexed (0001)
        const name = idx ? this.entry(idx)[0] : str();
        out.push([name, str()]);
      }
    }
    return out;
  }

  private entry(index: number): [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return [...STATIC_TABLE[index - 1]!] as [string, string];
    const e = this.table[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`index ${index} beyond the dynamic table`);
    return [e[0], e[1]];
  }

  private insert(h: [string, string]): void {
    const size = entrySize(h);
    this.evict(size);
    if (size <= this.limit) {
      this.table.unshift(h);
      this.size += size;
    }
  }

  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.limit) this.size -= entrySize(this.table.pop()!);
  }
}

/** RFC 7541 4.1: name + value octets + 32. */
function entrySize(h: readonly [string, string]): number {
  return Buffer.byteLength(h[0]) + Buffer.byteLength(h[1]) + 32;
}

const STATIC_NAME = new Map<string, number>();
const STATIC_PAIR = new Map<string, number>();
STATIC_TABLE.forEach(([n, v], i) => {
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1);
  STATIC_PAIR.set(`${n}\0${v}`, i + 1);
});

function putInt(out: number[], first: number, prefixBits: number, v: number): void {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) return void out.push(first | v);
  out.push(first | mask);
  v -= mask;
  while (v >= 128) {
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function putString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'utf8');
  putInt(out, 0, 7, bytes.length);
  for (const b of bytes) out.push(b);
}

/**
 * Encodes a header list statelessly: an exact static-table match as an indexed field, everything else
 * as a literal without indexing (static name index when there is one). Names must be lower case.
 */
export function hpackEncode(headers: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    const pair = STATIC_PAIR.get(`${name}\0${value}`);
    if (pair !== undefined) {
      putInt(out, 0x80, 7, pair);
      continue;
    }
    const idx = STATIC_NAME.get(name) ?? 0;
    putInt(out, 0x00, 4, idx);
    if (!idx) putString(out, name);
    putString(out, value);
  }
  return Buffer.from(out);
}
