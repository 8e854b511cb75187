import type { LogLevel } from './args.js';

export type { LogLevel };

/** One line per event: errors and warnings on stderr, the rest on stdout (as the C daemon). */
export interface Logger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  enabled(level: LogLevel): boolean;
  /** The same sink in the shape @vmsb/xen and @vmsb/xapi take. */
  readonly sink: (level: LogLevel, message: string) => void;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface LogStreams {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/**
 * Characters a terminal or a journal reader would act on or hide: C0 and C1 controls (ESC starts
 * terminal sequences, BEL rings, CR and LF would start a forged line), DEL, Unicode format
 * characters (bidirectional overrides), line and paragraph separators, lone surrogates, private-use
 * and unassigned code points.
 */
const UNSAFE = /[\p{C}\p{Zl}\p{Zp}]/gu;

/**
 * A message as one safe line: every unsafe character shown as an escape (`\n`, `\x1b`, `\u202e`).
 * Applied at the sink, so that no message, whatever it quotes (variable names, reasons from
 * @vmsb/efi and @vmsb/auth, errors), reaches the log with guest bytes raw.
 */
export function escapeForLog(message: string): string {
  return message.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.codePointAt(0)!;
    if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
    if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, '0')}`;
    return `\\u{${code.toString(16)}}`;
  });
}

export function createLogger(level: LogLevel, streams: LogStreams = process): Logger {
  const limit = RANK[level];
  const enabled = (l: LogLevel): boolean => RANK[l] <= limit;
  const sink = (l: LogLevel, message: string): void => {
    if (!enabled(l)) return;
    const line = `${l}: ${escapeForLog(message)}\n`;
    (RANK[l] <= RANK.warn ? streams.stderr : streams.stdout).write(line);
  };
  return {
    error: (m) => sink('error', m),
    warn: (m) => sink('warn', m),
    info: (m) => sink('info', m),
    debug: (m) => sink('debug', m),
    enabled,
    sink,
  };
}

/**
 * Bounds what a guest can make the daemon log: every failed request is worth a line, but a guest
 * that sends failing requests in a loop must not flood dom0's journal. A token bucket admits
 * `burst` lines, then `perSecond`; the next line admitted says how many were dropped.
 */
export function guestCausedLog(
  log: Logger,
  burst = 50,
  perSecond = 5,
  now: () => number = Date.now,
): (level: LogLevel, message: string) => void {
  let tokens = burst;
  let last = now();
  let dropped = 0;
  return (level, message) => {
    if (!log.enabled(level)) return;
    const t = now();
    tokens = Math.min(burst, tokens + ((t - last) / 1000) * perSecond);
    last = t;
    if (tokens < 1) {
      dropped++;
      return;
    }
    tokens -= 1;
    log.sink(level, dropped === 0 ? message : `${message} (${dropped} earlier guest-caused messages suppressed)`);
    dropped = 0;
  };
}
