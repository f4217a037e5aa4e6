/**
 * sacreBLEU's default '13a' tokenizer, equivalent to mteval-v13a.pl as used by WMT
 * (sacrebleu/tokenizers/tokenizer_13a.py + tokenizer_re.py, v2.x). Steps, in order:
 *   1. language-independent: drop "<skipped>", join "-\n" line breaks, "\n" -> " ",
 *      unescape &quot; &amp; &lt; &gt;; pad with one space on each side
 *   2. put spaces around every ASCII punctuation/symbol except ' , - . (the space is in the class too, harmlessly):
 *      the class [\{-\~\[-\` -\&\(-\+\:-\@\/] = { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  /
 *   3. split off "." and "," unless preceded by a digit:  ([^0-9])([\.,]) -> "\1 \2 "
 *   4. split off "." and "," unless followed by a digit:   ([\.,])([^0-9]) -> " \1 \2"
 *   5. split off "-" when preceded by a digit:             ([0-9])(-)      -> "\1 \2 "
 *   6. collapse whitespace (Python str.split) and strip
 * Each regex is applied once over the whole string, left to right, non-overlapping: Python's re.sub and
 * JavaScript's replace with /g have the same semantics here.
 */
import { pySplit } from './py-text.ts';

const PUNCT = /([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])/g;
const PERIOD_COMMA_NOT_AFTER_DIGIT = /([^0-9])([.,])/g;
const PERIOD_COMMA_NOT_BEFORE_DIGIT = /([.,])([^0-9])/g;
const DASH_AFTER_DIGIT = /([0-9])(-)/g;

/** Returns the tokens joined by single spaces, as sacreBLEU's tokenizer returns a string. */
export function tokenize13a(line: string): string {
  let s = line
    .replaceAll('<skipped>', '')
    .replaceAll('-\n', '')
    .replaceAll('\n', ' ')
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>');
  s = ` ${s} `;
  s = s
    .replace(PUNCT, ' $1 ')
    .replace(PERIOD_COMMA_NOT_AFTER_DIGIT, '$1 $2 ')
    .replace(PERIOD_COMMA_NOT_BEFORE_DIGIT, ' $1 $2')
    .replace(DASH_AFTER_DIGIT, '$1 $2 ');
  return pySplit(s).join(' ');
}

/** sacreBLEU's 'none' tokenizer: the line as it is. */
export function tokenizeNone(line: string): string {
  return line;
}
