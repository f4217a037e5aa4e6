// sacreBLEU's 13a tokenizer, one rule at a time (the expected strings follow the regexes in
// sacrebleu/tokenizers/tokenizer_re.py applied by hand).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenize13a } from '../../src/eval/tokenizer-13a.ts';

test('punctuation and symbols are split off; apostrophes and inner hyphens are not', () => {
  assert.equal(tokenize13a('Hello, world!'), 'Hello , world !');
  assert.equal(tokenize13a("It wasn't surprising."), "It wasn't surprising .");
  assert.equal(tokenize13a('a well-known (x) [y] {z} "q" $5 50% @me #tag a/b a:b a;b a?b'),
    'a well-known ( x ) [ y ] { z } " q " $ 5 50 % @ me # tag a / b a : b a ; b a ? b');
  assert.equal(tokenize13a('x_y x^y x|y x~y x`y x\\y x<y>z x=y x+y x*y x&y'),
    'x _ y x ^ y x | y x ~ y x ` y x \\ y x < y > z x = y x + y x * y x & y');
});

test('periods and commas stay inside numbers, dashes split after digits', () => {
  assert.equal(tokenize13a('3.14 and 1,000 people.'), '3.14 and 1,000 people .');
  // "." preceded by a non-digit is split even before a digit: " .5" -> " . 5"
  assert.equal(tokenize13a('.5 a.b 1.a a,1'), '. 5 a . b 1 . a a , 1');
  // ([0-9])(-) -> "\1 \2 "; a hyphen after a letter stays
  assert.equal(tokenize13a('5-4 pre-war 1990-'), '5 - 4 pre-war 1990 -');
});

test('language-independent part: <skipped>, hyphenated line breaks, newlines, entities', () => {
  assert.equal(tokenize13a('a <skipped> b'), 'a b');
  assert.equal(tokenize13a('hyphen-\nated line\nbreak'), 'hyphenated line break');
  assert.equal(tokenize13a('&quot;Hi&quot; &amp; &lt;b&gt;'), '" Hi " & < b >');
});

test('whitespace collapses like Python str.split (including NBSP and U+3000), non-ASCII letters untouched', () => {
  assert.equal(tokenize13a('  a\t b\u00a0c\u3000d  '), 'a b c d');
  assert.equal(tokenize13a('producţia zahăr alb;'), 'producţia zahăr alb ;');
  assert.equal(tokenize13a(''), '');
});
