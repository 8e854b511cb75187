/**
 * The progress bar of a run over many VMs: done/total, rate and time left, on one line of stderr
 * rewritten in place. Only on a terminal; a pipe or a file gets nothing.
 */
import type { CliIo } from '../output.js';

export interface ProgressState {
  readonly done: number;
  readonly total: number;
  /** Since the run started. */
  readonly elapsedMs: number;
}

/** "1m05s", "42s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * One line, at most `width` columns: `[#####.....] 120/412  35.2 VM/s  ETA 8s` (Unicode blocks
 * unless `ascii`). The rate and ETA appear once something is done.
 */
export function renderProgress(state: ProgressState, width: number, ascii = false): string {
  const { done, total, elapsedMs } = state;
  const count = `${done}/${total}`;
  let tail = '';
  if (done > 0 && elapsedMs > 0) {
    const rate = (done * 1000) / elapsedMs;
    const left = total - done;
    tail = `  ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} VM/s  ETA ${formatDuration(left / rate)}`;
  }
  const text = ` ${count}${tail}`;
  const barWidth = Math.max(0, Math.min(40, width - text.length - 3));
  if (barWidth < 5) return `${count}${tail}`.slice(0, Math.max(0, width));
  const filled = total === 0 ? barWidth : Math.floor((barWidth * Math.min(done, total)) / total);
  const [full, empty] = ascii ? ['#', '.'] : ['█', '░'];
  return `[${full.repeat(filled)}${empty.repeat(barWidth - filled)}]${text}`;
}

/** Whether the bar is drawn: stderr is a terminal that understands cursor movement. */
export function progressWanted(io: CliIo): boolean {
  return io.stderr.isTTY === true && io.env.TERM !== 'dumb';
}

/** Draws the bar on stderr, redrawing at most every `intervalMs`, and clears it around other output. */
export class ProgressBar {
  private readonly started: number;
  private done = 0;
  private lastDraw = 0;
  private shown = false;
  private readonly enabled: boolean;

  constructor(
    private readonly io: CliIo,
    private readonly total: number,
    private readonly options: { ascii: boolean; intervalMs?: number; clock?: () => number } = { ascii: false },
  ) {
    this.enabled = progressWanted(io);
    this.started = this.now();
  }

  private now(): number {
    return this.options.clock?.() ?? performance.now();
  }

  private width(): number {
    const columns = (this.io.stderr as { columns?: number }).columns;
    return Math.max(20, (columns !== undefined && columns > 0 ? columns : 80) - 1);
  }

  private draw(): void {
    const line = renderProgress(
      { done: this.done, total: this.total, elapsedMs: this.now() - this.started },
      this.width(),
      this.options.ascii,
    );
    this.io.stderr.write(`\r\u001b[2K${line}`);
    this.shown = true;
    this.lastDraw = this.now();
  }

  /** Before a line goes to the terminal: take the bar away. */
  clear(): void {
    if (this.enabled && this.shown) this.io.stderr.write('\r\u001b[2K');
    this.shown = false;
  }

  /** One more VM done; redraws when due, when a line took the bar away, and for the last one. */
  tick(): void {
    this.done++;
    if (!this.enabled) return;
    const due = this.now() - this.lastDraw >= (this.options.intervalMs ?? 100);
    if (!this.shown || due || this.done >= this.total) this.draw();
  }

  /** Draw now (after other output cleared it). */
  redraw(): void {
    if (this.enabled) this.draw();
  }

  finish(): void {
    this.clear();
  }
}
