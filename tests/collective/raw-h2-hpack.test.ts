// HPACK against RFC 7541 Appendix C: the byte strings and decoded header lists printed there, with the
// dynamic table carried across the three requests / responses of each example (C.3 plain, C.4 Huffman,
// C.5 plain responses with a 256-byte table that evicts, C.6 the same with Huffman).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder, HpackError, hpackEncode } from '../../src/collective/raw-h2-hpack.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const REQUESTS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const RESPONSES: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
  [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'],
   ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']],
];

const EXAMPLES: { name: string; tableSize: number; blocks: string[]; want: [string, string][][] }[] = [
  { name: 'C.3 requests without Huffman', tableSize: 4096, want: REQUESTS, blocks: [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'] },
  { name: 'C.4 requests with Huffman', tableSize: 4096, want: REQUESTS, blocks: [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'] },
  { name: 'C.5 responses without Huffman (eviction)', tableSize: 256, want: RESPONSES, blocks: [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d
     546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
    '4803 3330 37c1 c0bf',
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f
     6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b
     2076 6572 7369 6f6e 3d31`] },
  { name: 'C.6 responses with Huffman (eviction)', tableSize: 256, want: RESPONSES, blocks: [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7
     8f0b 97c8 e9ae 82ae 43d3`,
    '4883 640e ffc1 c0bf',
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335
     dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`] },
];

for (const ex of EXAMPLES) {
  test(`HPACK decoder: RFC 7541 ${ex.name}`, () => {
    const d = new HpackDecoder(ex.tableSize);
    ex.blocks.forEach((b, i) => assert.deepEqual(d.decode(hex(b)), ex.want[i], `block ${i + 1}`));
  });
}

test('HPACK encoder: literals without indexing and static matches, read back by a fresh decoder; C.2.2 bytes', () => {
  // RFC 7541 C.2.2: ':path: /sample/path' as a literal without indexing with the static name index 4.
  assert.deepEqual(hpackEncode([[':path', '/sample/path']]), hex('040c 2f73 616d 706c 652f 7061 7468'));
  assert.deepEqual(hpackEncode([[':method', 'POST']]), hex('83'));
  const headers: [string, string][] = [
    [':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '16'],
    ['grpc-message', 'x'.repeat(300)], ['x-ringtune-token', 'sécret'],
  ];
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hpackEncode(headers)), headers);
  assert.deepEqual(d.decode(hpackEncode(headers)), headers, 'stateless: the same block decodes the same way twice');
});

test('HPACK decoder rejects bad blocks with HpackError', () => {
  for (const bad of ['be', '00', '0f', '8cf1e3c2e5f23a6ba0ab90f4ff', '418cf1e3c2e5f23a6ba0ab90f4', '3fe21f', '4181ff']) {
    assert.throws(() => new HpackDecoder().decode(hex(bad)), HpackError, bad);
  }
});
