/** Where a tool writes, and what it reads from its environment. */
export interface ToolIo {
  /** The program name usage and getopt messages show (C's argv[0]). */
  readonly argv0: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  out(chunk: string | Uint8Array): void;
  err(chunk: string | Uint8Array): void;
}

/** The process's own streams (writes to files and pipes are synchronous on Linux). */
export function processIo(): ToolIo {
  return {
    argv0: process.argv[1] ?? 'varstore',
    env: process.env,
    out: (chunk) => void process.stdout.write(chunk),
    err: (chunk) => void process.stderr.write(chunk),
  };
}

/** Collects output in memory (for tests and for callers that post-process it). */
export class BufferIo implements ToolIo {
  private readonly outChunks: Buffer[] = [];
  private readonly errChunks: Buffer[] = [];

  constructor(
    readonly argv0 = 'varstore-tool',
    readonly env: Readonly<Record<string, string | undefined>> = {},
  ) {}

  out(chunk: string | Uint8Array): void {
    this.outChunks.push(Buffer.from(chunk));
  }

  err(chunk: string | Uint8Array): void {
    this.errChunks.push(Buffer.from(chunk));
  }

  get stdout(): Buffer {
    return Buffer.concat(this.outChunks);
  }

  get stderr(): string {
    return Buffer.concat(this.errChunks).toString('utf8');
  }
}

/**
 * Runs a tool as the process: its exit status becomes the process's once stdout and stderr have
 * drained. A closed stdout (`varstore-ls | head`) ends the tool quietly, as SIGPIPE ends the C tool.
 */
export function runAsProcess(tool: (argv: readonly string[], io: ToolIo) => Promise<number>): void {
  const io = processIo();
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(1);
    throw e;
  });
  const finish = (code: number): void => {
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  };
  tool(process.argv.slice(2), io).then(finish, (e: unknown) => {
    io.err(`${e instanceof Error ? e.message : String(e)}\n`);
    finish(1);
  });
}
