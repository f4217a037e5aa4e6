/**
 * Python string behaviour that the reference scorers (sacreBLEU, rouge-score, the SQuAD script) rely on
 * and JavaScript spells differently. Python's `str.split()` / `str.strip()` use the characters for which
 * `str.isspace()` is true (Unicode White_Space plus the ASCII separators \x1c-\x1f); JavaScript's `\s`
 * adds U+FEFF and lacks \x1c-\x1f and U+0085, so we spell Python's set out.
 */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACES = new RegExp(`[${PY_SPACE}]+`, 'g');
const PY_TRAILING = new RegExp(`[${PY_SPACE}]+$`);

/** Python `s.split()`: split on runs of whitespace, no empty strings. */
export function pySplit(s: string): string[] {
  return s.split(PY_SPACES).filter((t) => t.length > 0);
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(PY_TRAILING, '');
}

/**
 * Python `s.lower()`. JavaScript's toLowerCase applies the same Unicode default case mapping
 * (including final sigma and U+0130 -> "i\u0307"), so this is the identity alias kept for readability.
 */
export function pyLower(s: string): string {
  return s.toLowerCase();
}
