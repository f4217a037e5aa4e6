/**
 * A fast encoder for byte-level BPE tokenizers (GPT-2, RoBERTa, Llama 3, SmolLM2 and the ones
 * tokenizer-build.ts writes) that gives exactly the ids tokenizers.js (@huggingface/tokenizers 0.2.0,
 * pinned) gives for `encode(text, { add_special_tokens: false })`. It exists because data preparation
 * spent its time in the library's per-word overheads, not in BPE: profiling one preparation thread on
 * 30 MB of text (notes/s6-tok.md) gave 20% in its LRU cache's Map delete+set on every hit, 20% in a
 * TextEncoder call per word, 14% in the byte -> unicode mapping (Array.from + join), 7% in vocab
 * lookups, 0.5% in the pre-tokenizer regex and 0.5% in the merge loop itself.
 *
 * So, as Hugging Face's Rust BPE does, most words never reach BPE: a bounded cache maps each
 * pre-tokenized word, as the regex cut it from the text (before the byte mapping), to its ids. Only a
 * word seen for the first time (or evicted) is mapped to bytes and merged, by a rank-keyed heap on
 * typed arrays over interned symbols.
 *
 * The library's pipeline, and what is replicated of it (everything else makes `compileByteLevelBpe`
 * refuse, and the Tokenizer keeps using the library):
 *   1. added tokens cut out of the text: longest match from each position, as its DictionarySplitter;
 *      lstrip/rstrip trim the neighbouring sections (single_word is ignored, as the library does)
 *   2. normalizer: must be null (then every added token is matched on the raw text)
 *   3. pre-tokenizer ByteLevel: optional prefix space per section, GPT-2's regex (use_regex), then
 *      each word's UTF-8 bytes as GPT-2's byte symbols (lone surrogates encode as U+FFFD, as TextEncoder)
 *   4. model BPE: merges applied lowest (rank, position) first, the rank of a pair being its LAST
 *      index in `merges` (the library's Map keeps the last duplicate); ignore_merges; a piece missing
 *      from the vocab becomes unk_token or is dropped. byte_fallback, fuse_unk, end_of_word_suffix and
 *      continuing_subword_suffix must be off. (dropout is ignored by the library, so here too.)
 *   5. ids: vocab, overridden by added tokens (the library sets them into the same map)
 * Tests: tests/model/tokenizer-engine.test.ts compares every id with the library's.
 */
import { BYTE_TO_UNICODE } from './tokenizer-build.ts';

/** GPT-2's pre-tokenization regex, exactly as the library's ByteLevel pre-tokenizer writes it. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Words per cache generation; two generations, so at most twice this many words are held. */
const CACHE_GENERATION = 32_768;
/** Longer words are merged every time (an adversarial line of one 1 MB "word" is not kept). */
const MAX_CACHED_WORD = 256;
/** V8 keeps a substring of 13+ characters as a slice of its parent: such keys are copied before caching. */
const MIN_SLICED_STRING = 13;

interface AddedTokenEntry { content: string; id: number; lstrip: boolean; rstrip: boolean }

/** Why the fast path does not apply, or the compiled tables it runs on. */
export type ByteLevelBpeCompiled = { ok: ByteLevelBpe } | { unsupported: string };

/**
 * Checks that `tokenizerJson` (as given to the library, after ringtune's completion of missing keys)
 * and `tokenizerConfig` use only the pieces listed in the header, and builds the encoder.
 */
export function compileByteLevelBpe(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>): ByteLevelBpeCompiled {
  const no = (why: string): ByteLevelBpeCompiled => ({ unsupported: why });
  if (tokenizerConfig.remove_space === true) return no('tokenizer_config.json sets remove_space');
  if (tokenizerConfig.do_lowercase_and_remove_accent) return no('tokenizer_config.json sets do_lowercase_and_remove_accent');
  if (tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined) return no(`normalizer ${describe(tokenizerJson.normalizer)}`);
  const pre = tokenizerJson.pre_tokenizer as Record<string, unknown> | null | undefined;
  if (!pre || pre.type !== 'ByteLevel') return no(`pre_tokenizer ${describe(pre)}`);
  if (!optionalBoolean(pre.add_prefix_space) || !optionalBoolean(pre.use_regex)) return no('ByteLevel pre_tokenizer options that are not booleans');
  const model = tokenizerJson.model as Record<string, unknown>;
  if (model.type !== 'BPE') return no(`model ${describe(model)}`);
  for (const key of ['byte_fallback', 'fuse_unk', 'end_of_word_suffix', 'continuing_subword_suffix'] as const) {
    if (model[key]) return no(`BPE ${key} = ${JSON.stringify(model[key])}`);
  }
  const vocab = model.vocab as Record<string, unknown>;
  if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) return no('model.vocab is not an object');
  const ids = new Map<string, number>();
  for (const [piece, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id)) return no(`vocab id of ${JSON.stringify(piece)} is not an integer`);
    ids.set(piece, id as number);
  }
  const added: AddedTokenEntry[] = [];
  for (const t of (tokenizerJson.added_tokens ?? []) as Array<Record<string, unknown>>) {
    if (typeof t.content !== 'string' || !Number.isInteger(t.id)) return no('an added token without string content and integer id');
    added.push({ content: t.content, id: t.id as number, lstrip: Boolean(t.lstrip), rstrip: Boolean(t.rstrip) });
    ids.set(t.content, t.id as number);
  }
  const unk = model.unk_token;
  let unkId = -1;
  if (unk !== null && unk !== undefined) {
    const id = typeof unk === 'string' ? ids.get(unk) : undefined;
    if (id === undefined) return no(`unk_token ${JSON.stringify(unk)} is not in the vocab`);
    unkId = id;
  }
  const merges = model.merges;
  if (!Array.isArray(merges)) return no('model.merges is not a list');
  const newFormat = Array.isArray(merges[0]);
  const pairs: Array<[string, string] | undefined> = [];
  for (const m of merges) {
    const parts = newFormat ? m : typeof m === 'string' ? m.split(' ', 2) : undefined;
    if (!Array.isArray(parts) || parts.some((p) => typeof p !== 'string')) return no('a merge that is neither "a b" nor ["a", "b"]');
    // The library keys ranks by JSON.stringify(parts): a part list that is not a pair never matches.
    pairs.push(parts.length === 2 ? [parts[0], parts[1]] : undefined);
  }
  return {
    ok: new ByteLevelBpe({
      ids, added, unkId, pairs,
      addPrefixSpace: pre.add_prefix_space === true,
      useRegex: pre.use_regex !== false,
      ignoreMerges: Boolean(model.ignore_merges),
    }),
  };
}

interface Tables {
  /** Piece -> id: the vocab, then the added tokens over it. */
  ids: Map<string, number>;
  added: AddedTokenEntry[];
  /** Id of unk_token, or -1 when there is none (a piece missing from the vocab is then dropped). */
  unkId: number;
  /** merges[rank] as a pair of pieces (undefined: a malformed entry that never matches). */
  pairs: ReadonlyArray<readonly [string, string] | undefined>;
  addPrefixSpace: boolean;
  useRegex: boolean;
  ignoreMerges: boolean;
}

export class ByteLevelBpe {
  private readonly ids: Map<string, number>;
  private readonly unkId: number;
  private readonly addPrefixSpace: boolean;
  private readonly useRegex: boolean;
  private readonly ignoreMerges: boolean;
  private readonly regex = new RegExp(GPT2_SPLIT.source, GPT2_SPLIT.flags);
  private readonly added: AddedTokenSplitter;

  // Symbols: every byte character and every merge's parts and result, interned; a pair of symbols
  // (left * symbolCount + right) -> its rank; rank -> the merged symbol; symbol -> id or -1.
  private readonly symbolOf = new Map<string, number>();
  private readonly symbolText: string[] = [];
  private readonly rankOf = new Map<number, number>();
  private readonly mergedSymbol: Int32Array;
  private readonly symbolIds: Int32Array;
  private readonly byteSymbol = new Int32Array(256);

  // Word cache: two generations; a hit in the older one moves the word to the newer one.
  private hot = new Map<string, readonly number[]>();
  private cold = new Map<string, readonly number[]>();

  // Scratch for one word's merge (grown on demand).
  private bytes = new Uint8Array(1024);
  private sym = new Int32Array(0);
  private next = new Int32Array(0);
  private prev = new Int32Array(0);
  private heap = new Float64Array(0);
  private readonly encoder = new TextEncoder();

  constructor(t: Tables) {
    this.ids = t.ids;
    this.unkId = t.unkId;
    this.addPrefixSpace = t.addPrefixSpace;
    this.useRegex = t.useRegex;
    this.ignoreMerges = t.ignoreMerges;
    this.added = new AddedTokenSplitter(t.added);
    for (let b = 0; b < 256; b++) this.byteSymbol[b] = this.intern(BYTE_TO_UNICODE[b]);
    const pairSymbols: Array<[number, number, number] | undefined> = t.pairs.map((p) => (p ? [this.intern(p[0]), this.intern(p[1]), this.intern(p[0] + p[1])] : undefined));
    const n = this.symbolText.length;
    this.mergedSymbol = new Int32Array(t.pairs.length);
    for (const [rank, p] of pairSymbols.entries()) {
      if (!p) continue;
      this.rankOf.set(p[0] * n + p[1], rank); // a later duplicate overwrites: the library keeps the last
      this.mergedSymbol[rank] = p[2];
    }
    this.symbolIds = Int32Array.from(this.symbolText, (s) => this.ids.get(s) ?? -1);
  }

  /** Ids of `text` without the post-processor's specials (the library's add_special_tokens: false). */
  encode(text: string): number[] {
    const out: number[] = [];
    const sections = this.added.split(text);
    for (const section of sections) {
      if (typeof section === 'number') out.push(section);
      else if (section.length > 0) this.encodeSection(section, out);
    }
    return out;
  }

  /** One stretch of text between added tokens: the ByteLevel pre-tokenizer, then BPE per word. */
  private encodeSection(section: string, out: number[]): void {
    const text = this.addPrefixSpace && !section.startsWith(' ') ? ' ' + section : section;
    if (!this.useRegex) return this.encodeWord(text, out);
    // match() with /g gives the words as one array of strings: no match object per word.
    const words = text.match(this.regex);
    if (words) for (let i = 0; i < words.length; i++) this.encodeWord(words[i], out);
  }

  private encodeWord(word: string, out: number[]): void {
    let ids = this.hot.get(word);
    if (ids === undefined) {
      ids = this.cold.get(word);
      if (ids === undefined) ids = this.bpeWord(word);
      if (word.length <= MAX_CACHED_WORD) {
        this.hot.set(word.length >= MIN_SLICED_STRING ? copyString(word) : word, ids);
        if (this.hot.size >= CACHE_GENERATION) {
          this.cold = this.hot;
          this.hot = new Map();
        }
      }
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }

  /** The library's BPE.encode([byteLevel(word)]) as ids. */
  private bpeWord(word: string): number[] {
    const n = this.toBytes(word);
    const out: number[] = [];
    if (this.ignoreMerges) {
      let whole = '';
      for (let i = 0; i < n; i++) whole += BYTE_TO_UNICODE[this.bytes[i]];
      const id = this.ids.get(whole);
      if (id !== undefined) return [id];
    }
    if (n === 0) return out;
    this.ensureScratch(n);
    const { sym, next, prev, heap } = this;
    const symbols = this.symbolText.length;
    for (let i = 0; i < n; i++) {
      sym[i] = this.byteSymbol[this.bytes[i]];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Min-heap of rank * n + position of the pair's left symbol: the library's (rank, position) order.
    let size = 0;
    const push = (key: number) => {
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent] <= key) break;
        heap[i] = heap[parent];
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap[--size];
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
      return top;
    };
    const rankAt = (i: number): number => {
      const j = next[i];
      if (j < 0) return -1;
      return this.rankOf.get(sym[i] * symbols + sym[j]) ?? -1;
    };
    for (let i = 0; i + 1 < n; i++) {
      const r = rankAt(i);
      if (r >= 0) push(r * n + i);
    }
    while (size > 0) {
      const key = pop();
      const i = key % n;
      const rank = (key - i) / n;
      // Stale when the symbol at i was merged away or changed since: its pair no longer has this rank.
      if (sym[i] < 0 || rankAt(i) !== rank) continue;
      const j = next[i];
      sym[i] = this.mergedSymbol[rank];
      sym[j] = -1;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      const left = prev[i];
      if (left >= 0) {
        const r = rankAt(left);
        if (r >= 0) push(r * n + left);
      }
      const r = rankAt(i);
      if (r >= 0) push(r * n + i);
    }
    for (let i = 0; i >= 0; i = next[i]) {
      const id = this.symbolIds[sym[i]];
      if (id >= 0) out.push(id);
      else if (this.unkId >= 0) out.push(this.unkId);
    }
    return out;
  }

  /** UTF-8 of `word` into this.bytes (lone surrogates as U+FFFD, as TextEncoder.encode); returns the length. */
  private toBytes(word: string): number {
    for (;;) {
      const { read, written } = this.encoder.encodeInto(word, this.bytes);
      if (read === word.length) return written;
      this.bytes = new Uint8Array(this.bytes.length * 2 + word.length * 3);
    }
  }

  private ensureScratch(n: number): void {
    if (this.sym.length >= n) return;
    const size = Math.max(n, 2 * this.sym.length, 64);
    this.sym = new Int32Array(size);
    this.next = new Int32Array(size);
    this.prev = new Int32Array(size);
    // Each merge pushes at most 2 pairs after the n-1 initial ones: 3n bounds the heap.
    this.heap = new Float64Array(3 * size);
  }

  private intern(s: string): number {
    let id = this.symbolOf.get(s);
    if (id === undefined) {
      id = this.symbolText.length;
      this.symbolOf.set(s, id);
      this.symbolText.push(s);
    }
    return id;
  }
}

/**
 * The library's DictionarySplitter over the added tokens plus its lstrip/rstrip pass: the text as
 * stretches (strings) and added tokens (their ids), in order. At each position the longest token
 * starting there wins; the positions tried are those holding a token's first character (UTF-16 code
 * unit), found by a regex character class (a native scan: most texts have none).
 */
class AddedTokenSplitter {
  private readonly trie: TrieNode = Object.create(null) as TrieNode;
  private readonly starts?: RegExp;
  private readonly byContent = new Map<string, AddedTokenEntry>();

  constructor(tokens: readonly AddedTokenEntry[]) {
    for (const t of tokens) {
      this.byContent.set(t.content, t);
      let node = this.trie;
      for (let i = 0; i < t.content.length; i++) node = (node[t.content[i]] ??= Object.create(null) as TrieNode) as TrieNode;
      node.end = t.content;
    }
    const firsts = [...new Set(tokens.filter((t) => t.content.length > 0).map((t) => t.content.charCodeAt(0)))];
    // No 'u' flag: the class matches code units, so a token starting with a surrogate pair is found by its first half.
    if (firsts.length) this.starts = new RegExp(`[${firsts.map((c) => `\\u${c.toString(16).padStart(4, '0')}`).join('')}]`, 'g');
  }

  split(text: string): Array<string | number> {
    const starts = this.starts;
    if (!starts) return [text];
    const parts: string[] = [];
    const n = text.length;
    let start = 0;
    let i = 0;
    while (i < n) {
      starts.lastIndex = i;
      if (starts.exec(text) === null) break;
      i = starts.lastIndex - 1;
      let node: TrieNode | undefined = this.trie;
      let match: string | undefined;
      for (let j = i; j < n && (node = node[text[j]] as TrieNode | undefined); j++) if (node.end) match = node.end;
      if (match) {
        if (i > start) parts.push(text.slice(start, i));
        parts.push(match);
        i += match.length;
        start = i;
      } else {
        i++;
      }
    }
    if (start < n) parts.push(text.slice(start));
    // lstrip / rstrip trim the neighbours in place, left to right, each part judged as it is when
    // reached (a token part trimmed by its neighbour is text from then on), as the library does.
    for (let k = 0; k < parts.length; k++) {
      const t = this.byContent.get(parts[k]);
      if (!t) continue;
      if (t.lstrip && k > 0) parts[k - 1] = parts[k - 1].trimEnd();
      if (t.rstrip && k < parts.length - 1) parts[k + 1] = parts[k + 1].trimStart();
    }
    return parts.map((p) => (p.length > 0 ? this.byContent.get(p)?.id ?? p : p));
  }
}

interface TrieNode { [ch: string]: TrieNode | string | undefined; end?: string }

/** A flat copy of `s`, so a cached key does not keep its whole record alive (V8 sliced strings). */
function copyString(s: string): string {
  return Buffer.from(s, 'utf16le').toString('utf16le');
}

function optionalBoolean(v: unknown): boolean {
  return v === undefined || typeof v === 'boolean';
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'none';
  const type = (v as { type?: unknown }).type;
  return typeof type === 'string' ? type : JSON.stringify(v).slice(0, 60);
}
