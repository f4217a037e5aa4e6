/**
 * metrics.jsonl: one JSON line per completed step ({type: 'train'}) and per evaluation ({type:
 * 'eval'}). A resumed run keeps the lines up to its checkpoint's step and rewrites the file without
 * the rest (they belong to steps that will run again), then appends as it goes.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { historyFile } from './outputs.ts';

export interface HistoryLine {
  type: 'train' | 'eval';
  step: number;
  [key: string]: number | string;
}

export class RunHistory {
  private constructor(readonly file: string, readonly lines: HistoryLine[]) {}

  /** Opens the history of `outputDir` for a run starting at `fromStep` (0: a fresh, empty history). */
  static async open(outputDir: string, fromStep: number): Promise<RunHistory> {
    await mkdir(outputDir, { recursive: true });
    const file = historyFile(outputDir);
    const lines = fromStep === 0 ? [] : await readLines(file, fromStep);
    await writeFileAtomic(file, lines.map((h) => JSON.stringify(h) + '\n').join(''));
    return new RunHistory(file, lines);
  }

  async append(line: HistoryLine): Promise<void> {
    this.lines.push(line);
    await appendFile(this.file, JSON.stringify(line) + '\n');
  }
}

async function readLines(file: string, upTo: number): Promise<HistoryLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as HistoryLine).filter((h) => h.step <= upTo);
}
