import { open } from 'node:fs/promises';
import { EfiStatus, Limits } from '@vmsb/protocol';
import { parseCommandLine, printUsage, type ToolSpec } from './command-line.js';
import { efiStatusText } from './efi-errors.js';
import type { ToolIo } from './io.js';
import { parseGuidArgument } from './names.js';
import { parseAttributesArgument } from './numbers.js';
import { nameArgument, openToolSession, type PrepareOptions } from './prepare.js';

export const SET: ToolSpec = {
  synopsis: '[-h] [depriv options] <vm-uuid> <guid> <name> <attributes> <data-file>',
  description: [
    'Creates, replaces, appends to or deletes an EFI variable of the VM with the contents of <data-file>.',
    '<attributes> is a number: 7 = non-volatile|boot-service|runtime, 0x27 adds time-based',
    'authentication, and 0x40 (append) adds the data to the existing value.',
    'An empty <data-file>, or attributes with neither boot-service nor runtime access, deletes a',
    'normal variable. An authenticated variable takes an EFI_VARIABLE_AUTHENTICATION_2 (.auth)',
    'file; one with no payload deletes it.',
  ],
};

type ReadResult =
  | { readonly ok: true; readonly data: Uint8Array }
  | { readonly ok: false; readonly problem: 'open' | 'size' | 'read' };

/**
 * The data file, at most one variable's worth. A regular file is sized first (as in C); anything
 * else (a pipe, /dev/stdin) is read to its end rather than taken as empty.
 */
async function readDataFile(path: string): Promise<ReadResult> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return { ok: false, problem: 'open' };
  }
  try {
    const info = await handle.stat();
    if (info.isFile()) {
      if (info.size > Limits.DATA_MAX) return { ok: false, problem: 'size' };
      const data = new Uint8Array(info.size);
      const { bytesRead } = await handle.read(data, 0, info.size, 0);
      return bytesRead === info.size ? { ok: true, data } : { ok: false, problem: 'read' };
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Limits.DATA_MAX + 1 - total);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > Limits.DATA_MAX) return { ok: false, problem: 'size' };
    }
    return { ok: true, data: new Uint8Array(Buffer.concat(chunks)) };
  } catch {
    return { ok: false, problem: 'read' };
  } finally {
    await handle.close();
  }
}

/** varstore-set: one SetVariable with the file's contents. */
export async function varstoreSet(
  argv: readonly string[],
  io: ToolIo,
  options: Partial<PrepareOptions> = {},
): Promise<number> {
  const parsed = parseCommandLine(argv, SET, io);
  if (!parsed.ok) return parsed.exitCode;
  const { commandLine } = parsed;
  if (commandLine.operands.length !== 5) {
    printUsage(SET, io);
    return 1;
  }
  const [uuid, guidArg, nameArg, attributesArg, path] = commandLine.operands as [
    string,
    string,
    string,
    string,
    string,
  ];
  const session = await openToolSession(commandLine, uuid, io, { ...options, authenticated: true });
  if (session === undefined) return 1;

  const name = nameArgument(nameArg, io);
  if (name === undefined) return 1;
  const guid = parseGuidArgument(guidArg);
  if (guid === undefined) {
    io.err('do_set: Failed to parse GUID\n');
    return 1;
  }
  const attributes = parseAttributesArgument(attributesArg);
  if (attributes === undefined) {
    io.err('do_set: Failed to parse attributes\n');
    return 1;
  }
  // Read after privileges are dropped (inside the chroot, if any), as the C tool does.
  const file = await readDataFile(path);
  if (!file.ok) {
    if (file.problem === 'open') io.err(`do_set: Failed to open ${path}\n`);
    else if (file.problem === 'size') io.out('Invalid file size\n');
    else io.err('do_set: Failed to read from file\n');
    return 1;
  }
  const status = await session.setVariable(name, guid, attributes, file.data);
  if (status !== EfiStatus.SUCCESS) {
    io.err(`${efiStatusText(status)}\n`);
    return 1;
  }
  return 0;
}
