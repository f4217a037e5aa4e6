// reference.json: outputs of the reference scorers' Python code (sacreBLEU 13a/BLEU, rouge-score,
// SQuAD v1.1 script) on random inputs, written by fixtures/make_reference.py.
import { readFileSync } from 'node:fs';

export interface Reference {
  tokenizer13a: { input: string; output: string }[];
  bleu: {
    segments: { hypothesis: string; references: string[]; stats: number[] }[];
    score: number;
    precisions: number[];
    bp: number;
    sys_len: number;
    ref_len: number;
    counts: number[];
    totals: number[];
  };
  rouge: { prediction: string; references: string[]; scores: Record<'rouge1' | 'rouge2' | 'rougeL', [number, number, number]> }[];
  squad: { prediction: string; answers: string[]; normalized: string; em: boolean; f1: number }[];
}

export const reference = JSON.parse(readFileSync(new URL('./fixtures/reference.json', import.meta.url), 'utf8')) as Reference;
