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

export function createLogger(level: LogLevel, streams: LogStreams = process): Logger {
  const limit = RANK[level];
  const enabled = (l: LogLevel): boolean => RANK[l] <= limit;
  const sink = (l: LogLevel, message: string): void => {
    if (!enabled(l)) return;
    // One event, one line: a message never spans lines, whatever it quotes.
    const line = `${l}: ${message.replace(/[\r\n]+/g, ' ')}\n`;
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
