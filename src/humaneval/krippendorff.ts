/**
 * Krippendorff's alpha, the agreement of several raters who each gave some units a value, with any
 * rater missing any unit. Follows K. Krippendorff, "Computing Krippendorff's Alpha-Reliability"
 * (2011, https://repository.upenn.edu/asc_papers/43), section "C. Data with missing values":
 *
 *   1. Pairable values: only units that got m_u >= 2 values count; n = total values in them.
 *   2. Coincidence matrix o_ck = sum over units u of (number of ordered pairs (c, k) of values of u
 *      from different raters) / (m_u - 1). Its row sums are n_c; sum_c n_c = n.
 *   3. Difference function delta^2(c, k) of the metric:
 *        nominal   0 if c = k else 1
 *        ordinal   (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2   (ranks: the marginals between c and k)
 *        interval  (c - k)^2
 *   4. alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_ck o_ck delta^2_ck / sum_ck n_c n_k delta^2_ck
 *
 * alpha = 1 is perfect agreement, 0 agreement at chance level; undefined (null) when no unit has two
 * values or all pairable values are the same (D_e = 0: nothing to disagree about).
 */

export type AlphaMetric = 'nominal' | 'ordinal' | 'interval';

/** One unit's values, one per rater who rated it (raters who did not are simply absent). */
export type Unit = readonly number[];

export interface AlphaResult {
  /** null when undefined: fewer than one pairable unit, or no variation in the pairable values. */
  alpha: number | null;
  /** Units with >= 2 values, and the values in them (n). */
  pairableUnits: number;
  pairableValues: number;
}

export function krippendorffAlpha(units: readonly Unit[], metric: AlphaMetric): AlphaResult {
  // 1. pairable units; the distinct values, sorted (ordinal ranks run over this order)
  const pairable = units.filter((u) => u.length >= 2);
  const values = [...new Set(pairable.flat())].sort((a, b) => a - b);
  const index = new Map(values.map((v, i) => [v, i]));
  const V = values.length;
  const n = pairable.reduce((s, u) => s + u.length, 0);
  const none = { alpha: null, pairableUnits: pairable.length, pairableValues: n };
  if (pairable.length === 0) return none;

  // 2. coincidences (V, V): a unit's counts per value give its pairs without looping over raters
  const o = new Float64Array(V * V);
  for (const u of pairable) {
    const counts = new Map<number, number>();
    for (const v of u) counts.set(index.get(v)!, (counts.get(index.get(v)!) ?? 0) + 1);
    for (const [c, nc] of counts) {
      for (const [k, nk] of counts) o[c * V + k] += (c === k ? nc * (nc - 1) : nc * nk) / (u.length - 1);
    }
  }
  const nc = new Float64Array(V);
  for (let c = 0; c < V; c++) for (let k = 0; k < V; k++) nc[c] += o[c * V + k];

  // 3. metric differences
  const delta2 = (c: number, k: number): number => {
    if (metric === 'nominal') return c === k ? 0 : 1;
    if (metric === 'interval') return (values[c] - values[k]) ** 2;
    const [lo, hi] = c < k ? [c, k] : [k, c];
    let between = 0;
    for (let g = lo; g <= hi; g++) between += nc[g];
    return (between - (nc[c] + nc[k]) / 2) ** 2;
  };

  // 4. observed vs expected disagreement
  let observed = 0;
  let expected = 0;
  for (let c = 0; c < V; c++) {
    for (let k = 0; k < V; k++) {
      const d = delta2(c, k);
      observed += o[c * V + k] * d;
      expected += nc[c] * nc[k] * d;
    }
  }
  if (expected === 0) return none;
  return { ...none, alpha: 1 - ((n - 1) * observed) / expected };
}
