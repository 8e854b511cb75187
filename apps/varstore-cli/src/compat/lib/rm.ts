import { parseCommandLine, printUsage, type ToolSpec } from './command-line.js';
import { CLONE_LIST_DIR, readCloneLists, type CloneListEntry } from './clone-list.js';
import type { ToolIo } from './io.js';
import { parseGuidArgument } from './names.js';
import { nameArgument, openToolSession, type PrepareOptions } from './prepare.js';
import { removeVariable } from './remove.js';

export const RM: ToolSpec = {
  synopsis: '[-c] [-h] [depriv options] <vm-uuid> [<guid> <name>]',
  description: [
    'Deletes an EFI variable of the VM (normal, or PK/KEK/db/dbx-style authenticated).',
    `With -c, give no <guid> <name>: deletes instead every variable listed in the files of ${CLONE_LIST_DIR}`,
    '(lines "<guid> <name>"; "#" starts a comment), as is done to a VM after it is cloned.',
  ],
  flags: 'c',
};

/** varstore-rm: one variable, or (-c) the remove-on-clone lists. */
export async function varstoreRm(
  argv: readonly string[],
  io: ToolIo,
  options: Partial<PrepareOptions> = {},
): Promise<number> {
  const parsed = parseCommandLine(argv, RM, io);
  if (!parsed.ok) return parsed.exitCode;
  const { commandLine } = parsed;
  const clone = commandLine.flags.has('c');
  if (commandLine.operands.length !== (clone ? 1 : 3)) {
    printUsage(RM, io);
    return 1;
  }
  const uuid = commandLine.operands[0]!;

  // The lists are read with the caller's privileges, before any chroot.
  let entries: readonly CloneListEntry[] = [];
  if (clone) {
    const lists = await readCloneLists(io);
    if (!lists.ok) {
      io.err(`${lists.message}\n`);
      return 1;
    }
    entries = lists.entries;
  }

  const session = await openToolSession(commandLine, uuid, io, { ...options, authenticated: true });
  if (session === undefined) return 1;

  if (clone) {
    // Each listed variable is removed if present; a missing one is reported and skipped.
    for (const entry of entries) {
      io.out(
        Buffer.concat([
          Buffer.from(`Removing: GUID: '${entry.guidText}' Name: '`),
          Buffer.from(entry.name),
          Buffer.from("'\n"),
        ]),
      );
      const name = nameArgument(entry.name, io);
      if (name !== undefined) await removeVariable(session, entry.guid, name, io);
    }
    return 0;
  }

  const guid = parseGuidArgument(commandLine.operands[1]!);
  if (guid === undefined) {
    io.err('main: Failed to parse GUID\n');
    return 1;
  }
  const name = nameArgument(commandLine.operands[2]!, io);
  if (name === undefined) return 1;
  return (await removeVariable(session, guid, name, io)) ? 0 : 1;
}
