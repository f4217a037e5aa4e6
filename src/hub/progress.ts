/**
 * Download progress on stderr: a redrawn bar on a TTY, a few plain lines otherwise (logs, CI, the
 * prefixed output of `ringtune local`), nothing for 'none'. Hand-written: the one bar library in
 * node_modules (cli-progress) is only an optional dependency of @huggingface/hub, not ours.
 */
import type { ProgressStyle } from './hub-options.ts';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const BAR = 24;
const REDRAW_MS = 100;

export class FileProgress {
  private done: number;
  private lastDraw = 0;
  private lastQuarter: number;
  private readonly started = performance.now();
  private readonly startBytes: number;

  constructor(private readonly style: ProgressStyle, private readonly log: (t: string) => void, private readonly label: string, private readonly total: number, from: number) {
    this.done = from;
    this.startBytes = from;
    this.lastQuarter = Math.floor((4 * from) / Math.max(total, 1));
    if (style === 'lines') log(`${label}: ${from > 0 ? `resuming at ${mb(from)} of ` : 'downloading '}${mb(total)}\n`);
    if (style === 'bar') this.draw();
  }

  advance(bytes: number): void {
    this.done += bytes;
    if (this.style === 'bar' && performance.now() - this.lastDraw >= REDRAW_MS) this.draw();
    if (this.style === 'lines') {
      const quarter = Math.floor((4 * this.done) / Math.max(this.total, 1));
      if (quarter > this.lastQuarter && quarter < 4) this.log(`${this.label}: ${quarter * 25}% (${mb(this.done)} of ${mb(this.total)})\n`);
      this.lastQuarter = quarter;
    }
  }

  /** Bytes on disk now (a restart from zero rewinds). */
  at(bytes: number): void {
    this.done = bytes;
  }

  /** A transfer was cut off and will resume at `at`. */
  retry(at: number, why: string, attempt: number): void {
    this.done = at;
    this.log(`${this.style === 'bar' ? '\n' : ''}${this.label}: transfer cut off at ${mb(at)} (${why}); resuming, attempt ${attempt}\n`);
  }

  finish(): void {
    this.done = this.total;
    if (this.style === 'bar') {
      this.draw();
      this.log('\n');
    }
    if (this.style === 'lines') this.log(`${this.label}: done (${mb(this.total)})\n`);
  }

  private draw(): void {
    this.lastDraw = performance.now();
    const f = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const filled = Math.round(f * BAR);
    const secs = (performance.now() - this.started) / 1000;
    const rate = secs > 0 ? (this.done - this.startBytes) / secs : 0;
    this.log(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${mb(this.done)}/${mb(this.total)} ${mb(rate)}/s `);
  }
}
