/**
 * What every compatibility tool shares on its command line: `-h`, the privilege options
 * `-d -g <gid> -r <chroot> -s <socket> -u <uid>`, each tool's own flags, the usage text on stdout,
 * and the C tools' exit statuses (usage: 0 for -h, 1 otherwise).
 */
import { DEFAULT_XAPI_SOCKET } from '@vmsb/xapi';
import { scanArguments } from './getopt.js';
import type { ToolIo } from './io.js';
import { parseIdArgument } from './numbers.js';
import type { PrivilegeRequest } from './privileges.js';

export interface ToolSpec {
  /** The usage line after "usage: <argv0> ", exactly as the C tool prints it. */
  readonly synopsis: string;
  /** What the tool does, one line per entry. */
  readonly description: readonly string[];
  /** The tool's own flags without arguments (e.g. "a" for varstore-get -a). */
  readonly flags?: string;
}

export interface CommandLine {
  readonly flags: ReadonlySet<string>;
  readonly operands: readonly string[];
  readonly privileges: PrivilegeRequest;
  /** `-s`: the XAPI socket (inside the chroot, if any). */
  readonly socket?: string;
}

export type CommandLineResult =
  | { readonly ok: true; readonly commandLine: CommandLine }
  | { readonly ok: false; readonly exitCode: number };

const PRIVILEGE_OPTIONS = 'r:dg:s:u:';

export function printUsage(spec: ToolSpec, io: ToolIo): void {
  const lines = [
    `usage: ${io.argv0} ${spec.synopsis}`,
    '',
    ...spec.description,
    '',
    'Privilege options (applied before XAPI is contacted):',
    '  [-d] - reduce privileges further (no new privileges for this process)',
    '  [-g] <gid> - switch to this group (and only this supplementary group)',
    '  [-r] <chroot> - change the root directory to <chroot>',
    `  [-s] <path> - the XAPI socket, inside the chroot if one is given (default ${DEFAULT_XAPI_SOCKET})`,
    '  [-u] <uid> - switch to this user',
  ];
  io.out(`${lines.join('\n')}\n`);
}

/** Reads the options in order; the first -h, option error or bad id ends the tool as C's does. */
export function parseCommandLine(argv: readonly string[], spec: ToolSpec, io: ToolIo): CommandLineResult {
  const flags = new Set<string>();
  let chroot: string | undefined;
  let socket: string | undefined;
  let uid = 0;
  let gid = 0;
  let depriv = false;
  const scanned = scanArguments(argv, `h${spec.flags ?? ''}${PRIVILEGE_OPTIONS}`, {
    posixlyCorrect: io.env.POSIXLY_CORRECT !== undefined,
  });
  for (const event of scanned.events) {
    if (event.kind === 'error') {
      io.err(`${io.argv0}: ${event.message}\n`);
      printUsage(spec, io);
      return { ok: false, exitCode: 1 };
    }
    const argument = event.argument ?? '';
    switch (event.option) {
      case 'h':
        printUsage(spec, io);
        return { ok: false, exitCode: 0 };
      case 'd':
        depriv = true;
        break;
      case 'r':
        chroot = argument;
        break;
      case 's':
        socket = argument;
        break;
      case 'u':
      case 'g': {
        const id = parseIdArgument(argument);
        if (id === undefined) {
          io.err(`invalid ${event.option === 'u' ? 'uid' : 'gid'} '${argument}'\n`);
          return { ok: false, exitCode: 1 };
        }
        if (event.option === 'u') uid = id;
        else gid = id;
        break;
      }
      default:
        flags.add(event.option);
    }
  }
  return {
    ok: true,
    commandLine: {
      flags,
      operands: scanned.operands,
      privileges: { ...(chroot !== undefined ? { chroot } : {}), uid, gid, depriv },
      ...(socket !== undefined ? { socket } : {}),
    },
  };
}
