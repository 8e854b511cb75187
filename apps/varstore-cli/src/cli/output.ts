/** Where a command writes, and how: glyphs, colour and tables for people, JSON for programs. */

export interface Stream {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean;
}

export interface CliIo {
  readonly stdout: Stream;
  readonly stderr: Stream;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The clock (certificate expiry, default timestamps, backup names). */
  now(): Date;
}

export type Tone = 'ok' | 'bad' | 'warn' | 'info';

const GLYPHS: Record<Tone, { unicode: string; ascii: string }> = {
  ok: { unicode: '✓', ascii: '+' },
  bad: { unicode: '✗', ascii: 'x' },
  warn: { unicode: '!', ascii: '!' },
  info: { unicode: '·', ascii: '-' },
};

const COLOURS = { green: 32, red: 31, yellow: 33, cyan: 36, bold: 1, dim: 2 } as const;
export type Colour = keyof typeof COLOURS;

const TONE_COLOUR: Record<Tone, Colour> = { ok: 'green', bad: 'red', warn: 'yellow', info: 'dim' };

export interface StyleOptions {
  /** --ascii on the command line. */
  readonly ascii?: boolean;
  /** --no-color on the command line. */
  readonly noColor?: boolean;
}

/**
 * Unicode glyphs unless asked not to (`--ascii`, `VARSTORE_ASCII=1`) or the locale says the
 * terminal is not UTF-8 (LC_ALL, LC_CTYPE or LANG set to something without UTF-8, such as C).
 */
export function useUnicode(env: CliIo['env'], options: StyleOptions = {}): boolean {
  if (options.ascii === true) return false;
  const forced = env.VARSTORE_ASCII;
  if (forced !== undefined && forced !== '') return forced === '0';
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG;
  if (locale === undefined || locale === '') return true;
  return /utf-?8/i.test(locale);
}

/** Colour only on a terminal, and never with NO_COLOR set or --no-color. */
export function useColour(stream: Stream, env: CliIo['env'], options: StyleOptions = {}): boolean {
  if (options.noColor === true) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export type Align = 'left' | 'right';

/** Display width of a string: code points, with ANSI colour sequences not counted. */
export function displayWidth(text: string): number {
  return [...text.replace(/\u001b\[[0-9;]*m/g, '')].length;
}

function pad(text: string, width: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return align === 'right' ? fill + text : text + fill;
}

/** Rows aligned in columns separated by two spaces; trailing blanks trimmed. */
export function formatTable(
  headers: readonly string[] | undefined,
  rows: readonly (readonly string[])[],
  align: readonly Align[] = [],
): string[] {
  const all = headers === undefined ? rows : [headers, ...rows];
  const columns = Math.max(0, ...all.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(0, ...all.map((r) => displayWidth(r[c] ?? ''))));
  return all.map((row) =>
    Array.from({ length: columns }, (_, c) =>
      pad(row[c] ?? '', c === columns - 1 && (align[c] ?? 'left') === 'left' ? 0 : widths[c]!, align[c] ?? 'left'),
    )
      .join('  ')
      .trimEnd(),
  );
}

/** Control characters and lone surrogates made visible, for names that come from a store. */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0))
      out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code >= 0xd800 && code <= 0xdfff) out += `\\u${code.toString(16)}`;
    else out += ch;
  }
  return out;
}

export class Output {
  readonly unicode: boolean;
  readonly colour: boolean;
  private readonly errColour: boolean;

  constructor(
    readonly io: CliIo,
    options: StyleOptions = {},
  ) {
    this.unicode = useUnicode(io.env, options);
    this.colour = useColour(io.stdout, io.env, options);
    this.errColour = useColour(io.stderr, io.env, options);
  }

  /** A line on stdout. */
  line(text = ''): void {
    this.io.stdout.write(`${text}\n`);
  }

  lines(texts: readonly string[]): void {
    for (const t of texts) this.line(t);
  }

  /** Raw bytes on stdout (get without --json/--hex on a pipe). */
  bytes(data: Uint8Array): void {
    this.io.stdout.write(data);
  }

  /** The JSON document of a command (--json), pretty-printed, one per run. */
  json(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A diagnostic on stderr. */
  error(text: string): void {
    this.io.stderr.write(`${this.paint('varstore: ', 'bold', this.errColour)}${text}\n`);
  }

  /** A warning on stderr. */
  warn(text: string): void {
    this.io.stderr.write(`${this.paint(`${this.glyphText('warn')} warning:`, 'yellow', this.errColour)} ${text}\n`);
  }

  /** A note on stderr (progress, hints), so stdout stays parseable. */
  note(text: string): void {
    this.io.stderr.write(`${text}\n`);
  }

  private glyphText(tone: Tone): string {
    return this.unicode ? GLYPHS[tone].unicode : GLYPHS[tone].ascii;
  }

  /** ✓ ✗ ! · (or + x ! -), coloured on a terminal. */
  glyph(tone: Tone): string {
    return this.paint(this.glyphText(tone), TONE_COLOUR[tone]);
  }

  /** Text in a colour (stdout's terminal only). */
  paint(text: string, colour: Colour, enabled = this.colour): string {
    return enabled ? `\u001b[${COLOURS[colour]}m${text}\u001b[0m` : text;
  }

  tone(text: string, tone: Tone): string {
    return this.paint(text, TONE_COLOUR[tone]);
  }

  table(
    headers: readonly string[] | undefined,
    rows: readonly (readonly string[])[],
    align: readonly Align[] = [],
  ): void {
    const lines = formatTable(headers, rows, align);
    if (headers !== undefined && lines.length > 0) lines[0] = this.paint(lines[0]!, 'bold');
    this.lines(lines);
  }

  /** "label  value" pairs aligned on the value. */
  fields(pairs: readonly (readonly [string, string])[]): void {
    this.lines(
      formatTable(
        undefined,
        pairs.map(([k, v]) => [this.paint(k, 'bold'), v]),
      ),
    );
  }
}

/**
 * Progress over many stores, on stderr and only on a terminal: one line rewritten in place.
 * Silent otherwise, so logs and pipes see only results.
 */
export class Progress {
  private readonly enabled: boolean;
  private shown = false;

  constructor(
    private readonly io: CliIo,
    private readonly total: number,
  ) {
    this.enabled = io.stderr.isTTY === true && total > 1;
  }

  step(index: number, label: string): void {
    if (!this.enabled) return;
    const text = `[${index + 1}/${this.total}] ${label}`;
    this.io.stderr.write(`\r\u001b[2K${text.length > 100 ? `${text.slice(0, 99)}…` : text}`);
    this.shown = true;
  }

  done(): void {
    if (this.enabled && this.shown) this.io.stderr.write('\r\u001b[2K');
    this.shown = false;
  }
}
