/**
 * metrics.jsonl stays in step order (history.ts: train s, then the evaluation at s, then train s+1)
 * when a step's line comes late. A step completes when its last report arrives; a report lost (a NATS
 * outage) is re-sent later, so its step can complete after later ones, and a coordinator taking over
 * a run records the steps the killed one missed after the ones it had (recovery.ts R3, elastic.ts R5).
 *
 * Chosen: insert in order, by rewriting the file temp-then-rename when (and only when) an appended
 * line belongs before the one it follows. Not "readers sort": the file is read line by line as a
 * time series by more than ringtune's own readers (report.html's curves, the sweep's trial reader,
 * `tail -f`, a notebook), and a late line is rare (one rewrite per late step; the file is small).
 * A kill between the append and the rewrite leaves the late line at the end: the next coordinator's
 * RunHistory.open sorts the lines it keeps (history.ts `continued`), also temp-then-rename.
 */
import { encodeHistory, type HistoryLine, type RunHistory } from '../run/history.ts';
import { writeFileAtomic } from '../util/atomic.ts';

/** A line's place in the history: train s before the evaluation at s before train s+1. */
const order = (h: HistoryLine) => h.step * 2 + (h.type === 'eval' ? 1 : 0);

/**
 * Called after each append: when the last line belongs before the one it follows, moves it to its
 * place (in memory and in the file) and returns true.
 */
export async function keepInStepOrder(history: RunHistory): Promise<boolean> {
  const lines = history.lines;
  const n = lines.length;
  if (n < 2 || order(lines[n - 1]!) >= order(lines[n - 2]!)) return false;
  const late = lines.pop()!;
  let at = lines.length;
  while (at > 0 && order(lines[at - 1]!) > order(late)) at -= 1;
  lines.splice(at, 0, late);
  await writeFileAtomic(history.file, encodeHistory(lines));
  return true;
}
