/**
 * CSV as RFC 4180 writes it, for the rating sheets: fields joined by commas, records by CRLF; a
 * field holding a comma, a quote, CR or LF, or starting / ending with a space is quoted, with
 * quotes doubled. csv-parse (the reader) and spreadsheets read it back unchanged.
 *
 * Free text (prompts, completions, comments) that starts with = + - @ TAB or CR would be taken for
 * a formula by a spreadsheet (OWASP "CSV injection"): such a field gets a leading apostrophe, which
 * spreadsheets show as text and `ringtune ratings import` never reads back (it reads ids, scores,
 * raters; the text columns are for the rater's eyes). The HTML form (sheet-html.ts) writes the
 * same bytes with its own copy of these rules; tests/humaneval/sheet-html.test.ts holds them equal.
 */

const NEEDS_QUOTES = /[",\r\n]|^ | $/;
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvField(value: string, guardFormula = false): string {
  const v = guardFormula && FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** Rows of fields -> CSV text; `guard[i]` marks column i as free text (formula-guarded). */
export function csvText(rows: readonly (readonly string[])[], guard: readonly boolean[] = []): string {
  return rows.map((r) => r.map((f, i) => csvField(f, guard[i] ?? false)).join(',') + '\r\n').join('');
}
