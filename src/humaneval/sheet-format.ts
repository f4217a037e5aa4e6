/**
 * What a rating sheet holds, shared by its writers (sheet.csv, the HTML form) and its reader:
 *   id, prompt, completion, <one column per criterion>, rater, comment
 * Scores are integers on the scale (1..5); an empty score cell means "not rated". The criteria
 * default to the fine-tuning guide's list for judging generated text: fluency, relevance, diversity.
 */
import { InputError } from '../errors.ts';

export const DEFAULT_CRITERIA: readonly string[] = ['fluency', 'relevance', 'diversity'];

/** The rating scale; recorded in key.json so a sheet is read with the scale it was written with. */
export interface Scale { min: number; max: number }
export const DEFAULT_SCALE: Scale = { min: 1, max: 5 };

/** --scale MIN-MAX, e.g. 1-5 or 1-7: integers, MIN < MAX, at most 11 points (a radio button each in the form). */
export function parseScale(value: string, flag = '--scale'): Scale {
  const m = /^\s*(-?\d+)\s*-\s*(-?\d+)\s*$/.exec(value);
  const [min, max] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!m || !(min < max) || max - min > 10) throw new InputError(`${flag}: expected MIN-MAX with integers MIN < MAX at most 10 apart, e.g. 1-5; got "${value}"`);
  return { min, max };
}

export const FIXED_COLUMNS = { id: 'id', prompt: 'prompt', completion: 'completion', rater: 'rater', comment: 'comment' } as const;

/** The header of a sheet, in order. */
export function sheetColumns(criteria: readonly string[]): string[] {
  return [FIXED_COLUMNS.id, FIXED_COLUMNS.prompt, FIXED_COLUMNS.completion, ...criteria, FIXED_COLUMNS.rater, FIXED_COLUMNS.comment];
}

/** --criteria a,b,c -> names; each a plain word (it becomes a CSV column), unique, not a fixed column. */
export function parseCriteria(value: string, flag = '--criteria'): string[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InputError(`${flag}: give at least one criterion, e.g. ${DEFAULT_CRITERIA.join(',')}`);
  const fixed = new Set<string>(Object.values(FIXED_COLUMNS));
  for (const n of names) {
    if (!/^[a-z][a-z0-9_]*$/.test(n)) throw new InputError(`${flag}: "${n}" is not a criterion name (lower-case letters, digits and _, starting with a letter)`);
    if (fixed.has(n)) throw new InputError(`${flag}: "${n}" is a column every sheet has already; choose another name`);
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new InputError(`${flag}: "${dup}" is listed twice`);
  return names;
}

/** What the HTML form shows under each default criterion (a custom criterion shows its name only). */
export const CRITERION_HELP: Readonly<Record<string, string>> = {
  fluency: 'Reads as natural, grammatical text of the kind the prompt starts.',
  relevance: 'Continues or answers the prompt; stays on its subject.',
  diversity: 'Says something specific and varied; not repetitive, not generic filler.',
};
