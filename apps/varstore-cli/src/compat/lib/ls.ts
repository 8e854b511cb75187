import { EfiStatus, Limits } from '@vmsb/protocol';
import { parseCommandLine, printUsage, type ToolSpec } from './command-line.js';
import { efiStatusText } from './efi-errors.js';
import type { ToolIo } from './io.js';
import { guidText, printableName } from './names.js';
import { openToolSession, type PrepareOptions } from './prepare.js';

export const LS: ToolSpec = {
  synopsis: '[-h] [depriv options] <vm-uuid>',
  description: [
    "Prints one line per EFI variable of the VM: its GUID, a space, and its name's printable ASCII characters.",
  ],
};

/** Enough for any store (at most 1024 variables fit); more means the enumeration loops. */
const MAX_VARIABLES = 4096;

/** varstore-ls: every variable GetNextVariableName yields, as `<guid> <name>`. */
export async function varstoreLs(
  argv: readonly string[],
  io: ToolIo,
  options: Partial<PrepareOptions> = {},
): Promise<number> {
  const parsed = parseCommandLine(argv, LS, io);
  if (!parsed.ok) return parsed.exitCode;
  const { commandLine } = parsed;
  if (commandLine.operands.length !== 1) {
    printUsage(LS, io);
    return 1;
  }
  const session = await openToolSession(commandLine, commandLine.operands[0]!, io, {
    ...options,
    authenticated: false,
  });
  if (session === undefined) return 1;

  let name: Uint8Array = new Uint8Array(0);
  let guid: Uint8Array = new Uint8Array(16);
  for (let count = 0; count <= MAX_VARIABLES; count++) {
    // The C tools offer a 4096-byte name buffer.
    const next = await session.getNextVariableName(name, guid, Limits.NAME_MAX);
    if (next.status === EfiStatus.NOT_FOUND) return 0;
    if (next.status !== EfiStatus.SUCCESS) {
      io.err(`${efiStatusText(next.status)}\n`);
      return 1;
    }
    name = next.name!;
    guid = next.guid!;
    io.out(`${guidText(guid)} ${printableName(name)}\n`);
  }
  io.err(`the variable enumeration did not end after ${MAX_VARIABLES} variables\n`);
  return 1;
}
