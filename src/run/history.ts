/**
 * metrics.jsonl: one JSON line per completed step ({type: 'train'}) and per evaluation ({type:
 * 'eval'}), in step order, a train step before the evaluation that follows it. Non-finite numbers
 * are written as "NaN" / "Infinity" / "-Infinity" (record-json.ts), never as null.
 *
 * A resumed run continues the history of the run it resumes: the lines up to its checkpoint's step
 * are kept, later ones dropped (those steps run again), and lines are appended as steps complete.
 * A train step up to the checkpoint that metrics.jsonl lacks is taken from the lines the checkpoint
 * carries (CHECKPOINT_NAMES.history). Why a checkpoint carries them: in a distributed run the
 * coordinator writes metrics.jsonl but rank 0 writes checkpoints, and workers whose coordinator died
 * train on until they notice its silence (two heartbeat timeouts), writing checkpoints of steps the
 * coordinator never recorded. Resuming from such a checkpoint used to leave every step between the
 * coordinator's death and the checkpoint missing from the history.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { historyFile } from './outputs.ts';
import { parseRecord, readRecordLines, stringifyRecord } from './record-json.ts';

export interface HistoryLine {
  type: 'train' | 'eval';
  step: number;
  [key: string]: number | string;
}

export class RunHistory {
  private constructor(readonly file: string, readonly lines: HistoryLine[]) {}

  /**
   * Opens the history of `outputDir` for a run starting at `fromStep` (0: a fresh, empty history).
   * `carried`: the train lines the resumed checkpoint carries; they fill train steps <= fromStep
   * that the file lacks.
   */
  static async open(outputDir: string, fromStep: number, carried: readonly HistoryLine[] = []): Promise<RunHistory> {
    await mkdir(outputDir, { recursive: true });
    const file = historyFile(outputDir);
    const lines = fromStep === 0 ? [] : continued(await readHistoryFile(file), carried, fromStep);
    await writeFileAtomic(file, encodeHistory(lines));
    return new RunHistory(file, lines);
  }

  async append(line: HistoryLine): Promise<void> {
    this.lines.push(line);
    await appendFile(this.file, encodeHistory([line]));
  }
}

/** Lines as metrics.jsonl holds them (also the format of a checkpoint's carried lines). */
export function encodeHistory(lines: readonly HistoryLine[]): string {
  return lines.map((h) => stringifyRecord(h) + '\n').join('');
}

/**
 * The lines of a history file; a missing file has none. A last line cut short (the process was
 * killed while appending it) is dropped; a malformed line elsewhere is an error naming file:line.
 */
export async function readHistoryFile(file: string): Promise<HistoryLine[]> {
  return readRecordLines(file, (l) => parseRecord(l, ['type']) as HistoryLine, 'a history line', 'fix or remove that line');
}

/** The file's lines up to `upTo`, with train steps it lacks taken from `carried`, in history order. */
function continued(file: readonly HistoryLine[], carried: readonly HistoryLine[], upTo: number): HistoryLine[] {
  const kept = file.filter((h) => h.step <= upTo);
  const trainSteps = new Set(kept.filter((h) => h.type === 'train').map((h) => h.step));
  const filled = carried.filter((h) => h.type === 'train' && h.step <= upTo && !trainSteps.has(h.step));
  const order = (h: HistoryLine) => h.step * 2 + (h.type === 'eval' ? 1 : 0);
  // A stable sort: lines of the same step and type (there are none in a healthy file) keep their order.
  return [...kept, ...filled].sort((a, b) => order(a) - order(b));
}
