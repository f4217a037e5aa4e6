/**
 * Learning byte-pair-encoding merges from word counts (Sennrich et al. 2016, "Neural Machine
 * Translation of Rare Words with Subword Units"), the same procedure as the Rust `tokenizers`
 * BpeTrainer, written so one merge costs time proportional to the words that hold the pair, not
 * to the whole corpus.
 *
 * 1. Every distinct pre-tokenized word becomes a sequence of initial symbol ids, weighted by how
 *    often the word occurs.
 * 2. Every adjacent pair (a, b) is counted over all words (count × word frequency), and for each
 *    pair we remember the set of words that contain it.
 * 3. A max-heap holds (count, pair). Counts only ever go down for pairs already in the heap, so the
 *    heap is updated lazily: a popped entry whose count is stale is pushed back with the true count.
 * 4. The winning pair (highest count; ties go to the smaller (a, b) id pair, so the result does
 *    not depend on Map iteration order) becomes a new symbol join(a, b). Only the words that hold
 *    the pair are rewritten: their old pairs are subtracted, the word is merged left to right, and
 *    the new pairs are added. Pairs whose count grew (all of them contain the new symbol) are
 *    pushed onto the heap.
 * 5. Stop when `targetSymbols` distinct symbols exist or no pair reaches `minPairCount`.
 *
 * Like the Rust trainer, a merge whose joined string already exists as a symbol (e.g. "ab"+"c"
 * after "a"+"bc") is recorded as a merge but reuses that symbol's id and adds no new symbol.
 */

export interface BpeTrainOptions {
  /** The starting alphabet; symbol i gets id i. */
  initialSymbols: readonly string[];
  /** Initial symbols of one word. A word with a symbol outside the alphabet is skipped. */
  splitWord: (word: string) => string[];
  /** The string of the symbol that merging `left` and `right` creates. */
  join: (left: string, right: string) => string;
  /** Stop once this many distinct symbols (alphabet + learned) exist. */
  targetSymbols: number;
  /** Pairs seen fewer times than this are never merged. Default 1. */
  minPairCount?: number;
}

export interface LearnedBpe {
  /** Alphabet followed by the learned symbols, in the order they were created (index = symbol id). */
  symbols: string[];
  /** Merges in rank order (rank 0 is applied first when encoding). */
  merges: Array<[string, string]>;
}

/** Pair keys pack two symbol ids into one number; ids stay below 2^21, keys below 2^42. */
const KEY_BASE = 0x200000;
const pairKey = (a: number, b: number): number => a * KEY_BASE + b;

export function learnBpe(wordCounts: ReadonlyMap<string, number>, opts: BpeTrainOptions): LearnedBpe {
  const symbols = [...opts.initialSymbols];
  const symbolIds = new Map<string, number>(symbols.map((s, i) => [s, i]));
  const minPairCount = opts.minPairCount ?? 1;
  if (opts.targetSymbols >= KEY_BASE) throw new RangeError(`targetSymbols must be < ${KEY_BASE}`);

  // Step 1: words as id sequences. Sorted so the word order (and so everything after) is fixed.
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const word of [...wordCounts.keys()].sort()) {
    const ids = opts.splitWord(word).map((s) => symbolIds.get(s));
    if (ids.length < 2 || ids.some((id) => id === undefined)) continue; // nothing to merge / unknown symbol
    words.push(ids as number[]);
    freqs.push(wordCounts.get(word)!);
  }

  // Step 2: pair counts and where each pair occurs.
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1, grown?: Set<number>): void => {
    const ids = words[w]!;
    const f = freqs[w]! * sign;
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = pairKey(ids[i]!, ids[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      if (sign > 0) {
        let where = pairWords.get(key);
        if (!where) pairWords.set(key, (where = new Set()));
        where.add(w);
        grown?.add(key);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);

  // Step 3: lazy max-heap over (count, key).
  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(count, key);

  const merges: Array<[string, string]> = [];
  while (symbols.length < opts.targetSymbols && heap.size > 0) {
    const { count, key } = heap.pop();
    const actual = pairCounts.get(key) ?? 0;
    if (actual !== count) {
      if (actual > 0) heap.push(actual, key); // stale entry: retry with the true count
      continue;
    }
    if (count < minPairCount) break;

    // Step 4: create (or reuse) the joined symbol and rewrite the words that hold the pair.
    const a = Math.floor(key / KEY_BASE);
    const b = key % KEY_BASE;
    const joined = opts.join(symbols[a]!, symbols[b]!);
    let c = symbolIds.get(joined);
    if (c === undefined) {
      c = symbols.length;
      symbols.push(joined);
      symbolIds.set(joined, c);
    }
    merges.push([symbols[a]!, symbols[b]!]);

    const grown = new Set<number>();
    for (const w of pairWords.get(key) ?? []) {
      const ids = words[w]!;
      if (!containsPair(ids, a, b)) continue; // the set keeps words a previous merge rewrote
      addPairs(w, -1);
      const merged: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          merged.push(c);
          i++;
        } else {
          merged.push(ids[i]!);
        }
      }
      words[w] = merged;
      addPairs(w, 1, grown);
    }
    pairCounts.delete(key);
    pairWords.delete(key);
    for (const k of grown) {
      const n = pairCounts.get(k) ?? 0;
      if (n > 0 && (Math.floor(k / KEY_BASE) === c || k % KEY_BASE === c)) heap.push(n, k);
      else if (n <= 0) pairCounts.delete(k);
    }
  }
  return { symbols, merges };
}

function containsPair(ids: readonly number[], a: number, b: number): boolean {
  for (let i = 0; i + 1 < ids.length; i++) if (ids[i] === a && ids[i + 1] === b) return true;
  return false;
}

/** Binary max-heap of (count, key): higher count first, then smaller key (= smaller (a, b)). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    this.up(this.counts.length - 1);
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      this.down(0);
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.counts.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.before(l, best)) best = l;
      if (r < n && this.before(r, best)) best = r;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }
}
