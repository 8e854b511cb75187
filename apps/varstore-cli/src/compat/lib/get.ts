import { Attr } from '@vmsb/efi';
import { EfiStatus } from '@vmsb/protocol';
import { parseCommandLine, printUsage, type ToolSpec } from './command-line.js';
import { efiStatusText } from './efi-errors.js';
import type { ToolIo } from './io.js';
import { parseGuidArgument } from './names.js';
import { nameArgument, openToolSession, type PrepareOptions } from './prepare.js';

export const GET: ToolSpec = {
  synopsis: '[-h] [depriv options] [-a] <vm-uuid> <guid> <name>',
  description: ["Writes the variable's data to stdout as it is stored.", 'With -a, prints its attributes instead.'],
  flags: 'a',
};

/** The attribute lines of `varstore-get -a`, in the C tool's order. */
const ATTRIBUTE_NAMES: readonly (readonly [number, string])[] = [
  [Attr.NON_VOLATILE, 'EFI_VARIABLE_NON_VOLATILE'],
  [Attr.BOOTSERVICE_ACCESS, 'EFI_VARIABLE_BOOTSERVICE_ACCESS'],
  [Attr.RUNTIME_ACCESS, 'EFI_VARIABLE_RUNTIME_ACCESS'],
  [Attr.HARDWARE_ERROR_RECORD, 'EFI_VARIABLE_HARDWARE_ERROR_RECORD'],
  [Attr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS, 'EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS'],
  [Attr.APPEND_WRITE, 'EFI_VARIABLE_APPEND_WRITE'],
  [Attr.ENHANCED_AUTHENTICATED_ACCESS, 'EFI_VARIABLE_ENHANCED_AUTHENTICATED_ACCESS'],
  [Attr.AUTHENTICATED_WRITE_ACCESS, 'EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS'],
];

/** `Attributes = 0x%08x (%u)` and one line per attribute set. */
export function formatAttributeLines(attributes: number): string {
  const a = attributes >>> 0;
  let text = `Attributes = 0x${a.toString(16).padStart(8, '0')} (${a})\n`;
  for (const [bit, name] of ATTRIBUTE_NAMES) if ((a & bit) !== 0) text += `${name}\n`;
  return text;
}

/** varstore-get: the variable's data, or with -a its attributes. */
export async function varstoreGet(
  argv: readonly string[],
  io: ToolIo,
  options: Partial<PrepareOptions> = {},
): Promise<number> {
  const parsed = parseCommandLine(argv, GET, io);
  if (!parsed.ok) return parsed.exitCode;
  const { commandLine } = parsed;
  if (commandLine.operands.length !== 3) {
    printUsage(GET, io);
    return 1;
  }
  const [uuid, guidArg, nameArg] = commandLine.operands as [string, string, string];
  const session = await openToolSession(commandLine, uuid, io, { ...options, authenticated: false });
  if (session === undefined) return 1;

  const name = nameArgument(nameArg, io);
  if (name === undefined) return 1;
  const guid = parseGuidArgument(guidArg);
  if (guid === undefined) {
    io.err('do_get: Failed to parse GUID\n');
    return 1;
  }
  const r = await session.getVariable(name, guid);
  if (r.status !== EfiStatus.SUCCESS) {
    io.err(`${efiStatusText(r.status)}\n`);
    return 1;
  }
  if (commandLine.flags.has('a')) io.out(formatAttributeLines(r.attributes!));
  else io.out(r.data!);
  return 0;
}
