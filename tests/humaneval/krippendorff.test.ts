/**
 * Krippendorff's alpha against published worked examples and against an independent float64
 * brute force of the definition (every ordered pair of values, no coincidence matrix).
 *
 * Also against the coincidence matrix built pair by pair in the test.
 *
 * Published values:
 *   K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), section C, 4 observers x
 *   12 units with missing values: nominal 0.743, ordinal 0.815, interval 0.849.
 *   Wikipedia "Krippendorff's alpha", "A computational example": 3 coders x 15 units: nominal 0.691,
 *   interval 0.811 (0.691358 and 0.810845 to six places, as the Python package krippendorff
 *   (pln-fing-udelar/fast-krippendorff) tests them).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { krippendorffAlpha, type AlphaMetric, type Unit } from '../../src/humaneval/krippendorff.ts';
import { Rng } from '../../src/util/rng.ts';

const _ = NaN;
/** observers x units, NaN = missing -> the values of each unit. */
const unitsOf = (data: number[][]): Unit[] => data[0].map((__, j) => data.map((r) => r[j]).filter((v) => !Number.isNaN(v)));

const KRIPPENDORFF_2011 = unitsOf([
  [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
  [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
  [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
  [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]);

const WIKIPEDIA = unitsOf([
  [_, _, _, _, _, 3, 4, 1, 2, 1, 1, 3, 3, _, 3],
  [1, _, 2, 1, 3, 3, 4, 3, _, _, _, _, _, _, _],
  [_, _, 2, 1, 3, 4, 4, _, 2, 1, 1, 3, 3, _, 4],
]);

test("Krippendorff (2011) example: nominal 0.743, ordinal 0.815, interval 0.849", () => {
  const r = (m: AlphaMetric) => krippendorffAlpha(KRIPPENDORFF_2011, m);
  assert.equal(r('nominal').alpha!.toFixed(3), '0.743');
  assert.equal(r('ordinal').alpha!.toFixed(3), '0.815');
  assert.equal(r('interval').alpha!.toFixed(3), '0.849');
  // Unit 12 has one value: not pairable. 40 pairable values (the paper's n..).
  assert.equal(r('ordinal').pairableUnits, 11);
  assert.equal(r('ordinal').pairableValues, 40);
});

test('Wikipedia example: nominal 0.691358, interval 0.810845', () => {
  assert.equal(krippendorffAlpha(WIKIPEDIA, 'nominal').alpha!.toFixed(6), '0.691358');
  assert.equal(krippendorffAlpha(WIKIPEDIA, 'interval').alpha!.toFixed(6), '0.810845');
});

test('perfect agreement is 1 with any metric and missing values; undefined without pairs or variation', () => {
  const perfect: Unit[] = [[1, 1, 1], [2, 2], [5, 5, 5, 5], [3], [4, 4]];
  for (const m of ['nominal', 'ordinal', 'interval'] as const) assert.equal(krippendorffAlpha(perfect, m).alpha, 1);
  assert.equal(krippendorffAlpha([[1], [2], [3]], 'ordinal').alpha, null, 'no unit with two values');
  assert.equal(krippendorffAlpha([[3, 3], [3, 3, 3]], 'ordinal').alpha, null, 'one value throughout: D_e = 0');
  assert.equal(krippendorffAlpha([], 'ordinal').pairableUnits, 0);
});

/**
 * The definition, pair by pair in float64 (Krippendorff 2011, eqs. for D_o and D_e):
 *   D_o = 1/n sum_u 1/(m_u - 1) sum_{i != j in u} delta^2(v_i, v_j)
 *   D_e = 1/(n (n - 1)) sum_{i != j over all pairable values} delta^2(v_i, v_j)
 * with the ordinal delta from the counts n_g of the pairable values.
 */
function bruteAlpha(units: readonly Unit[], metric: AlphaMetric): number | null {
  const pairable = units.filter((u) => u.length >= 2);
  const all = pairable.flat();
  const n = all.length;
  const count = (g: number) => all.filter((v) => v === g).length;
  const delta2 = (c: number, k: number): number => {
    if (metric === 'nominal') return c === k ? 0 : 1;
    if (metric === 'interval') return (c - k) ** 2;
    const lo = Math.min(c, k), hi = Math.max(c, k);
    let s = 0;
    for (const g of new Set(all)) if (g >= lo && g <= hi) s += count(g);
    return (s - (count(c) + count(k)) / 2) ** 2;
  };
  let dO = 0;
  for (const u of pairable) {
    let s = 0;
    for (let i = 0; i < u.length; i++) for (let j = 0; j < u.length; j++) if (i !== j) s += delta2(u[i], u[j]);
    dO += s / (u.length - 1);
  }
  dO /= n;
  let dE = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) dE += delta2(all[i], all[j]);
  dE /= n * (n - 1);
  return dE === 0 ? null : 1 - dO / dE;
}

/**
 * The coincidence-matrix form of the same definition, built pair by pair (Krippendorff 2011, C.2):
 *   o_ck = sum_u sum_{i != j in u} [v_i = c][v_j = k] / (m_u - 1),  n_c = sum_k o_ck
 *   alpha = 1 - (n - 1) sum_ck o_ck delta^2_ck / sum_ck n_c n_k delta^2_ck
 */
function coincidenceAlpha(units: readonly Unit[], metric: AlphaMetric): number | null {
  const pairable = units.filter((u) => u.length >= 2);
  const values = [...new Set(pairable.flat())].sort((a, b) => a - b);
  const o = values.map(() => values.map(() => 0));
  for (const u of pairable) {
    for (let i = 0; i < u.length; i++) {
      for (let j = 0; j < u.length; j++) if (i !== j) o[values.indexOf(u[i])][values.indexOf(u[j])] += 1 / (u.length - 1);
    }
  }
  const nc = o.map((row) => row.reduce((a, b) => a + b, 0));
  const n = nc.reduce((a, b) => a + b, 0);
  const d = (c: number, k: number) => metric === 'nominal' ? (c === k ? 0 : 1) : metric === 'interval' ? (values[c] - values[k]) ** 2
    : (nc.slice(Math.min(c, k), Math.max(c, k) + 1).reduce((a, b) => a + b, 0) - (nc[c] + nc[k]) / 2) ** 2;
  let num = 0, den = 0;
  for (let c = 0; c < values.length; c++) for (let k = 0; k < values.length; k++) { num += o[c][k] * d(c, k); den += nc[c] * nc[k] * d(c, k); }
  return den === 0 ? null : 1 - ((n - 1) * num) / den;
}

test('equals two float64 brute forces (pairwise sums, coincidence matrix by pairs) on random 1-5 ratings with missing values, every metric', () => {
  assert.ok(Math.abs(bruteAlpha(KRIPPENDORFF_2011, 'ordinal')! - 0.815) < 5e-4, 'the brute force itself reproduces the paper');
  assert.ok(Math.abs(coincidenceAlpha(KRIPPENDORFF_2011, 'ordinal')! - 0.815) < 5e-4, 'so does the coincidence form');
  const rng = new Rng(7);
  for (let trial = 0; trial < 60; trial++) {
    const raters = 2 + rng.int(4);
    const units: Unit[] = [...Array(1 + rng.int(25))].map(() => {
      const truth = 1 + rng.int(5);
      // Raters near a per-unit truth (so alpha is far from 0), some missing, some far off.
      return [...Array(raters)].flatMap(() => (rng.next() < 0.25 ? [] : [Math.min(5, Math.max(1, truth + (rng.next() < 0.3 ? rng.int(5) - 2 : 0)))]));
    });
    for (const m of ['nominal', 'ordinal', 'interval'] as const) {
      const got = krippendorffAlpha(units, m).alpha;
      const want = bruteAlpha(units, m);
      const viaMatrix = coincidenceAlpha(units, m);
      if (want === null) assert.deepEqual([got, viaMatrix], [null, null], `trial ${trial} ${m}`);
      else {
        assert.ok(got !== null && Math.abs(got - want) < 1e-12, `trial ${trial} ${m}: ${got} vs ${want}`);
        assert.ok(viaMatrix !== null && Math.abs(viaMatrix - want) < 1e-12, `trial ${trial} ${m}: coincidence form ${viaMatrix} vs pairwise ${want}`);
      }
    }
  }
});

test('ordinal differs from interval: a 1-vs-2 disagreement counts by the ranks between, not the distance', () => {
  // Same data, values relabelled monotonically (2 -> 9): ordinal alpha unchanged, interval changes.
  const a = KRIPPENDORFF_2011;
  const b = a.map((u) => u.map((v) => (v === 2 ? 9 : v > 2 ? v + 10 : v)));
  assert.ok(Math.abs(krippendorffAlpha(a, 'ordinal').alpha! - krippendorffAlpha(b, 'ordinal').alpha!) < 1e-12);
  assert.ok(Math.abs(krippendorffAlpha(a, 'interval').alpha! - krippendorffAlpha(b, 'interval').alpha!) > 0.01);
});
