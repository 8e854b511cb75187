import { Guids } from '@vmsb/efi';
import { utf16le } from '@vmsb/protocol';
import { readAuthFiles, setupKeys, type AuthFile } from './auth-files.js';
import { parseCommandLine, printUsage, type ToolSpec } from './command-line.js';
import type { ToolIo } from './io.js';
import { openToolSession, type PrepareOptions } from './prepare.js';
import { removeVariable } from './remove.js';

export const SB_STATE: ToolSpec = {
  synopsis: '[-h] [depriv options] <vm-uuid> setup|user',
  description: [
    "setup: deletes the VM's PK, KEK, db and dbx, leaving its firmware in Setup Mode.",
    "user: does the same, then enrols the host's default keys (PK.auth, KEK.auth, db.auth, dbx.auth",
    'from /var/lib/varstored), leaving it in User Mode.',
  ],
};

const SECURE_BOOT_VARIABLES = [
  { name: 'PK', guid: Guids.GLOBAL_VARIABLE },
  { name: 'KEK', guid: Guids.GLOBAL_VARIABLE },
  { name: 'db', guid: Guids.IMAGE_SECURITY_DATABASE },
  { name: 'dbx', guid: Guids.IMAGE_SECURITY_DATABASE },
] as const;

/** varstore-sb-state: clear the Secure Boot keys, and for `user` enrol the defaults. */
export async function varstoreSbState(
  argv: readonly string[],
  io: ToolIo,
  options: Partial<PrepareOptions> = {},
): Promise<number> {
  const parsed = parseCommandLine(argv, SB_STATE, io);
  if (!parsed.ok) return parsed.exitCode;
  const { commandLine } = parsed;
  const mode = commandLine.operands[1];
  if (commandLine.operands.length !== 2 || (mode !== 'setup' && mode !== 'user')) {
    printUsage(SB_STATE, io);
    return 1;
  }

  // The key files are read with the caller's privileges; an unreadable one stops before any change.
  let files: readonly AuthFile[] = [];
  if (mode === 'user') {
    const read = await readAuthFiles(io);
    if (!read.ok) return 1;
    files = read.files;
  }

  const session = await openToolSession(commandLine, commandLine.operands[0]!, io, { ...options, authenticated: true });
  if (session === undefined) return 1;

  // Variables that are not there are reported and skipped.
  for (const v of SECURE_BOOT_VARIABLES) {
    io.out(`Removing ${v.name}...\n`);
    await removeVariable(session, v.guid, utf16le(v.name), io);
  }
  if (mode === 'user') return (await setupKeys(session, files, io)) ? 0 : 1;
  return 0;
}
