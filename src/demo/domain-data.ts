/**
 * The demo's "domain": marine weather bulletins, generated from a seeded grammar. Their vocabulary
 * and structure are far from the general corpus the base model is pre-trained on, so fine-tuning has
 * something to learn, and the held-out bulletins come from the same distribution as the training ones.
 */
import { Rng } from '../util/rng.ts';

const AREAS = ['Viking', 'Forties', 'Cromarty', 'Forth', 'Tyne', 'Dogger', 'Fisher', 'German Bight', 'Humber', 'Thames', 'Dover', 'Wight', 'Portland', 'Plymouth', 'Biscay', 'Fastnet', 'Lundy', 'Irish Sea', 'Shannon', 'Rockall', 'Malin', 'Hebrides', 'Bailey', 'Fair Isle', 'Faeroes'];
const DIRS = ['north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', 'northwest'];
const SEA = ['smooth', 'slight', 'moderate', 'rough', 'very rough', 'high'];
const WEATHER = ['fair', 'rain', 'showers', 'drizzle', 'fog patches', 'thundery showers', 'squally showers', 'rain later'];
const VIS = ['good', 'moderate', 'poor', 'good, occasionally poor', 'moderate or poor', 'very poor in fog'];
const TREND = ['backing', 'veering', 'becoming cyclonic', 'decreasing', 'increasing'];

export function bulletin(rng: Rng): string {
  const pick = <T>(xs: readonly T[]) => xs[rng.int(xs.length)];
  const force = 2 + rng.int(7);
  const later = Math.min(12, force + rng.int(3) - 1);
  const areas = [pick(AREAS), pick(AREAS)].filter((a, i, all) => all.indexOf(a) === i).join(', ');
  const wind = rng.next() < 0.5
    ? `${pick(DIRS)} ${force} to ${force + 1}, ${pick(TREND)} ${later} later`
    : `${pick(DIRS)} ${force}, occasionally ${force + 1} at first`;
  return `${areas}. Wind ${wind}. Sea state ${pick(SEA)}. Weather ${pick(WEATHER)}. Visibility ${pick(VIS)}.`;
}

export function domainLines(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return [...Array(n)].map(() => JSON.stringify({ text: bulletin(rng) }));
}
